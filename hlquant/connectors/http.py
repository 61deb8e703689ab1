"""HTTP polling connector: a third-party JSON API as signals.

Every ``interval_s`` the connector GETs ``url`` and turns the reply into
:class:`~hlquant.core.events.Signal` events through a field mapping from the
config (``fields: {signal_name: "path.in.reply"}``). Third-party APIs throttle
and fail, so a request goes through, in order:

1. a short-TTL cache (``TTLCache``) shared by every HTTP connector of the process:
   connectors asking for the same request within ``cache_ttl_s`` share one reply,
   and concurrent askers wait for the one request in flight;
2. a token bucket (``rate_per_s``, ``burst``; ``hlquant.core.ratelimit``) that
   spaces this connector's requests;
3. the host's ``Retry-After``: after a 429 no connector of the process asks that
   host again before the time it named (seconds or an HTTP date);
4. a timeout (``timeout_s``) on the whole request.

A failed poll is retried with capped exponential backoff and jitter
(``backoff_base_s`` doubling up to ``max_backoff_s``); a 429 waits exactly what
the host asked. Every outcome is typed (``FetchOutcome``; ``FetchError.retryable``)
and counted; nothing an API sends stops a session. Agents never call the API:
they read the latest value from the feature store, so any number of agents cost
one poll per interval.

Reply mapping: a path is dot-separated keys and list indices (``data.0.value``).
``items`` names a list of records, one per symbol (``symbol_field`` names the
symbol in each), and ``fields`` are then read inside each record. ``ts_field``
(optional) names the observation time (ms, s or ISO-8601); without it an
observation is stamped with its receive time. A time in the future is clamped to
the receive time (staleness never sees a negative age). Secrets (API keys) come
from the environment: ``headers_env: {Authorization: MY_API_TOKEN}``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from hlquant.bus.base import EventBus
from hlquant.connectors.base import SignalConnector, wait_or_stop
from hlquant.core.errors import ConfigError, HlquantError
from hlquant.core.events import Signal
from hlquant.core.ratelimit import TokenBucket

log = logging.getLogger(__name__)


class FetchOutcome(StrEnum):
    """What one poll came to (counted per outcome in ``counters``)."""

    OK = "ok"
    CACHED = "cached"  # served by the shared cache, no request
    THROTTLED = "throttled"  # HTTP 429 (retryable after Retry-After)
    TIMEOUT = "timeout"  # no complete reply within timeout_s (retryable)
    SERVER_ERROR = "server_error"  # HTTP 5xx (retryable)
    UNREACHABLE = "unreachable"  # connection refused / DNS / reset (retryable)
    CLIENT_ERROR = "client_error"  # HTTP 4xx other than 429: the request is wrong (final)
    BAD_PAYLOAD = "bad_payload"  # not JSON, or the mapping does not fit it (final for this reply)

    @property
    def retryable(self) -> bool:
        return self in (FetchOutcome.THROTTLED, FetchOutcome.TIMEOUT, FetchOutcome.SERVER_ERROR,
                        FetchOutcome.UNREACHABLE)


class FetchError(HlquantError):
    """A poll that produced no reply; ``outcome`` says why and whether retrying can help."""

    def __init__(self, outcome: FetchOutcome, message: str, retry_after_s: float | None = None) -> None:
        self.outcome, self.retry_after_s = outcome, retry_after_s
        super().__init__(f"{outcome.value}: {message}")

    @property
    def retryable(self) -> bool:
        return self.outcome.retryable


def parse_retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    v = value.strip()
    try:
        return max(0.0, float(v))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(v).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now_s is None else now_s))


@dataclass
class _Entry:
    expires: float
    value: Any


class TTLCache:
    """Replies younger than their TTL, keyed by request, shared by the connectors of a
    process; askers of a key being fetched wait for that one fetch (single flight).
    ``blocked_until`` holds each host's Retry-After deadline."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._entries: dict[Any, _Entry] = {}
        self._inflight: dict[Any, asyncio.Future] = {}
        self.blocked_until: dict[str, float] = {}
        self.hits = 0
        self.misses = 0

    async def get(self, key: Any, ttl_s: float, fetch: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        """``(value, from_cache)``; ``fetch()`` runs at most once per key at a time."""
        e = self._entries.get(key)
        if e is not None and self.clock() < e.expires:
            self.hits += 1
            return e.value, True
        fut = self._inflight.get(key)
        if fut is not None and fut.get_loop() is asyncio.get_running_loop():
            self.hits += 1
            return await asyncio.shield(fut), True
        self.misses += 1
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            value = await fetch()
        except BaseException as exc:
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # retrieved: waiters get it, nobody logs "never retrieved"
            raise
        else:
            if ttl_s > 0:
                self._entries[key] = _Entry(self.clock() + ttl_s, value)
            fut.set_result(value)
            return value, False
        finally:
            if self._inflight.get(key) is fut:
                del self._inflight[key]

    def clear(self) -> None:
        self._entries.clear()
        self.blocked_until.clear()


SHARED_CACHE = TTLCache()
"""The cache every HTTP connector of a process uses unless given another."""


def _path(obj: Any, path: str) -> Any:
    cur = obj
    for part in path.split(".") if path else ():
        if isinstance(cur, list):
            try:
                cur = cur[int(part)]
            except (ValueError, IndexError):
                raise ValueError(f"path {path!r}: no item {part!r}") from None
        elif isinstance(cur, dict):
            if part not in cur:
                raise ValueError(f"path {path!r}: no key {part!r}")
            cur = cur[part]
        else:
            raise ValueError(f"path {path!r}: {part!r} is inside a {type(cur).__name__}")
    return cur


def _number(x: Any, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, str)):
        raise ValueError(f"{what} is not a number: {x!r}")
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{what} is not finite: {x!r}")
    return v


def parse_time_ms(x: Any) -> int:
    """A source's timestamp: ms or s since epoch (number or digits), or ISO-8601 (naive = UTC)."""
    if isinstance(x, str) and not x.strip().lstrip("-").replace(".", "", 1).isdigit():
        import pandas as pd

        try:
            t = pd.Timestamp(x)
        except ValueError:
            raise ValueError(f"time {x!r} is not ISO-8601 or a number") from None
        if t.tzinfo is None:
            t = t.tz_localize("UTC")
        return int(t.value // 1_000_000)
    v = _number(x, "time")
    return int(v * 1000) if abs(v) < 1e11 else int(v)


class HttpPollingConnector(SignalConnector):
    """Polls a JSON API (module docstring). Parameters are ``HttpConnectorConfig``'s."""

    name = "http"
    historical = False  # an API's current value; record it to a file for backtests

    def __init__(self, url: str, fields: Mapping[str, str], interval_s: float = 60.0,
                 symbol: str | None = None, items: str | None = None, symbol_field: str = "symbol",
                 ts_field: str | None = None, params: Mapping[str, Any] | None = None,
                 headers_env: Mapping[str, str] | None = None, timeout_s: float = 10.0,
                 rate_per_s: float = 1.0, burst: float = 1.0, backoff_base_s: float = 1.0,
                 max_backoff_s: float = 300.0, cache_ttl_s: float = 5.0, *,
                 bus: EventBus | None = None, cache: TTLCache | None = None,
                 clock_ms: Callable[[], int] | None = None, rng: random.Random | None = None) -> None:
        super().__init__(bus)
        if not fields:
            raise ConfigError("http connector: fields (signal name -> path in the reply) is empty")
        if urlsplit(url).scheme not in ("http", "https"):
            raise ConfigError(f"http connector: url must be http(s)://..., got {url!r}")
        for k, v in (("interval_s", interval_s), ("timeout_s", timeout_s), ("rate_per_s", rate_per_s),
                     ("burst", burst), ("backoff_base_s", backoff_base_s), ("max_backoff_s", max_backoff_s)):
            if not float(v) > 0:
                raise ConfigError(f"http connector: {k} must be > 0, got {v!r}")
        self.url, self.fields = url, dict(fields)
        self.interval_s, self.symbol, self.items, self.symbol_field = float(interval_s), symbol, items, symbol_field
        self.ts_field, self.params = ts_field, {k: str(v) for k, v in (params or {}).items()}
        self.headers_env = dict(headers_env or {})
        self.timeout_s, self.cache_ttl_s = float(timeout_s), float(cache_ttl_s)
        self.backoff_base_s, self.max_backoff_s = float(backoff_base_s), float(max_backoff_s)
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.bucket = TokenBucket(rate_per_s, burst, self.clock_ms())
        self.cache = cache if cache is not None else SHARED_CACHE
        self.host = urlsplit(url).netloc
        self.rng = rng or random.Random()
        self.failures = 0
        self._last: dict[tuple[str, str | None], tuple[int, float]] = {}
        for o in FetchOutcome:
            self.counters[o.value] = 0
        self.counters["requests"] = 0

    def signal_names(self) -> set[str] | None:
        return set(self.fields)

    def _headers(self) -> dict[str, str]:
        out = {}
        for header, env in self.headers_env.items():
            value = os.environ.get(env)
            if value is None:
                raise ConfigError(f"http connector: header {header!r} needs the environment variable {env}")
            out[header] = value
        return out

    # ------------------------------------------------------------------ Connector API
    def connect(self) -> aiohttp.ClientSession:
        """A client session (the caller closes it)."""
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))

    def normalize(self, raw: tuple[Any, int]) -> list[Signal]:
        """``(reply JSON, receive time ms)`` -> signals; ``ValueError`` when the mapping
        does not fit the reply."""
        payload, recv = raw
        self.counters["messages"] += 1
        records: list[tuple[str | None, Any]]
        if self.items is not None:
            lst = _path(payload, self.items)
            if not isinstance(lst, list):
                raise ValueError(f"items {self.items!r} is not a list")
            records = [(str(_path(r, self.symbol_field)), r) for r in lst]
        else:
            records = [(self.symbol, payload)]
        out: list[Signal] = []
        for sym, rec in records:
            src = parse_time_ms(_path(rec, self.ts_field)) if self.ts_field else recv
            ts = min(src, recv)
            for name, path in self.fields.items():
                v = _number(_path(rec, path), f"field {name!r} ({path})")
                key = (name, sym)
                if self.ts_field and self._last.get(key) == (src, v):
                    continue  # the API repeats its last observation: nothing new
                self._last[key] = (src, v)
                out.append(Signal(ts, recv, name, v, sym))
        return out

    # ------------------------------------------------------------------ polling
    async def _request(self, session: aiohttp.ClientSession) -> Any:
        """One GET through the bucket and the host's Retry-After, or ``FetchError``."""
        now_s = time.monotonic()
        blocked = self.cache.blocked_until.get(self.host, 0.0)
        if blocked > now_s:
            await asyncio.sleep(blocked - now_s)
        wait = self.bucket.wait_ms(1, self.clock_ms())
        if wait:
            await asyncio.sleep(wait / 1000.0)
        self.bucket.take(1, self.clock_ms())
        self.counters["requests"] += 1
        try:
            async with session.get(self.url, params=self.params or None, headers=self._headers()) as r:
                body = await r.text()
                if r.status == 429:
                    after = parse_retry_after(r.headers.get("Retry-After"))
                    if after is not None:
                        self.cache.blocked_until[self.host] = time.monotonic() + after
                    raise FetchError(FetchOutcome.THROTTLED, f"{self.url}: HTTP 429", after)
                if r.status >= 500:
                    raise FetchError(FetchOutcome.SERVER_ERROR, f"{self.url}: HTTP {r.status}")
                if r.status >= 400:
                    raise FetchError(FetchOutcome.CLIENT_ERROR, f"{self.url}: HTTP {r.status}: {body[:200]}")
        except TimeoutError:
            raise FetchError(FetchOutcome.TIMEOUT, f"{self.url}: no reply within {self.timeout_s} s") from None
        except aiohttp.ClientError as e:
            raise FetchError(FetchOutcome.UNREACHABLE, f"{self.url}: {type(e).__name__}: {e}") from None
        try:
            return json.loads(body)
        except ValueError:
            raise FetchError(FetchOutcome.BAD_PAYLOAD, f"{self.url}: not JSON: {body[:200]!r}") from None

    def _key(self) -> tuple:
        return (self.url, tuple(sorted(self.params.items())), tuple(sorted(self.headers_env.items())))

    async def poll(self, session: aiohttp.ClientSession) -> list[Signal]:
        """One poll: the (cached) reply mapped to signals, or ``FetchError``."""
        payload, cached = await self.cache.get(self._key(), self.cache_ttl_s, lambda: self._request(session))
        recv = self.clock_ms()
        try:
            evs = self.normalize((payload, recv))
        except (ValueError, TypeError) as e:
            raise FetchError(FetchOutcome.BAD_PAYLOAD, f"{self.url}: {e}") from None
        self.counters[(FetchOutcome.CACHED if cached else FetchOutcome.OK).value] += 1
        return evs

    def next_wait(self, err: FetchError | None) -> float:
        """Seconds until the next poll after this outcome."""
        if err is None:
            self.failures = 0
            return self.interval_s
        if err.outcome is FetchOutcome.THROTTLED and err.retry_after_s is not None:
            return max(err.retry_after_s, 0.0)
        self.failures += 1
        if not err.retryable:
            return self.max_backoff_s
        cap = min(self.max_backoff_s, self.backoff_base_s * 2 ** (self.failures - 1))
        return cap * (0.5 + 0.5 * self.rng.random())  # jitter: replicas do not retry in step

    async def events(self, stop: asyncio.Event) -> AsyncIterator[Signal]:
        async with self.connect() as session:
            while not stop.is_set():
                err: FetchError | None = None
                evs: list[Signal] = []
                try:
                    evs = await self.poll(session)
                except FetchError as e:
                    err = e
                    self.counters[e.outcome.value] += 1
                    if e.outcome is FetchOutcome.BAD_PAYLOAD:
                        self.counters["bad_messages"] += 1
                    (log.error if not e.retryable else log.warning)("%s: %s", self.url, e)
                for ev in evs:
                    self.counters["events"] += 1
                    yield ev
                if await wait_or_stop(stop, self.next_wait(err)):
                    return
