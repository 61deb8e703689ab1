"""What every role process shares: config to kernel spec, Redis, stop signals, user feed."""

from __future__ import annotations

import asyncio
import logging
import queue
import signal
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from hlquant.bus.redis_state import redis_client
from hlquant.config.build import to_dict
from hlquant.config.spec import KernelSpec
from hlquant.core.events import Event

log = logging.getLogger(__name__)

MARKET_KINDS = ("FundingRate", "BookSnapshot", "BBO", "Trade", "Candle", "MarkPrice")
"""Market stream kinds, in the merge priority of equal timestamps (``MarketKind``)."""


def market_topic(kind: str, symbol: str) -> str:
    return f"{kind}:{{{symbol}}}"


def role_spec(cfg: Any) -> tuple[KernelSpec, Any]:
    """The run's spec (live mode) and a client of the shared Redis."""
    spec = KernelSpec.from_config(to_dict(cfg), mode="live")
    r = redis_client(spec.live.redis_url, spec.live.redis_cluster)
    first_contact(r, spec.live.redis_wait_s, spec.live.redis_url)
    return spec, r


def first_contact(r: Any, wait_s: float, url: str = "redis") -> None:
    """Wait, with backoff, until Redis answers (one log line while it does not), for at
    most ``wait_s`` (``live.redis_wait_s``): a component restarted while Redis restarts
    comes up; one pointed at a wrong address ends with Redis' own error (one line at the
    command line)."""
    import time

    stop = threading.Event()
    deadline = time.monotonic() + float(wait_s)
    where = urlsplit(url)  # host and port only: a URL may carry a password
    outage = Outage(f"start (redis at {where.hostname}:{where.port or 6379})", stop)

    def ping() -> None:
        try:
            r.ping()
        except outage.errors:
            if time.monotonic() >= deadline:
                stop.set()  # Outage.call re-raises once stop is set
            raise

    outage.call(ping)


def stop_on_signals(stop: threading.Event | None = None) -> threading.Event:
    """A flag set by SIGTERM/SIGINT (when called from the main thread)."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_a: stop.set())
    return stop


class UserFeed:
    """The exchange's user channels (fills, funding) on a background asyncio thread;
    the role's own loop drains them with ``drain()``, so the kernel stays on one thread."""

    def __init__(self, spec: KernelSpec, subscriptions: Sequence[dict[str, Any]],
                 seen_fills: Sequence[Any] = ()) -> None:
        """``seen_fills``: fills already accounted for; the channel's snapshot repeats them."""
        from hlquant.hyperliquid.info import InfoClient
        from hlquant.hyperliquid.ws import HyperliquidFeed

        ep = spec.endpoints()
        url, ws_url = ep.url, ep.ws_url
        self.feed = HyperliquidFeed(ws_url, subscriptions, info=InfoClient(url))
        self.feed.seed_tids(list(seen_fills))
        self._q: queue.Queue[Event] = queue.Queue()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="user-feed", daemon=True)
        self._ready = threading.Event()
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            async for ev in self.feed.events(self._stop):
                self._q.put(ev)

        try:
            asyncio.run(main())
        except Exception:  # the role notices through feed counters; it must not die silently
            log.exception("user feed stopped")

    @property
    def connected(self) -> bool:
        return self.feed.connected.is_set()

    def drain(self) -> list[Event]:
        out = []
        while True:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)


def _redis_errors() -> tuple[type[BaseException], ...]:
    """What Redis going away looks like (a restart also answers LOADING for a moment)."""
    import redis

    return (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


class Outage:
    """One line when Redis goes away, one when it is back; backoff in between, no
    traceback storm. ``run(step)`` calls ``step`` until ``stop``; ``call(fn)`` retries a
    single call (start-up) the same way."""

    def __init__(self, name: str, stop: threading.Event, max_backoff_s: float = 5.0) -> None:
        self.name, self.stop, self.max_backoff_s = name, stop, max_backoff_s
        self.errors = _redis_errors()
        self.down_since: float | None = None
        self.backoff = 0.05
        self.outages = 0

    def note_down(self, e: BaseException, doing: str = "retrying with backoff") -> None:
        """Count and log the start of an outage (once), without waiting."""
        import time

        if self.down_since is None:
            self.down_since = time.monotonic()
            self.outages += 1
            log.warning("%s: redis unavailable (%s); %s", self.name,
                        (str(e).splitlines() or [type(e).__name__])[0], doing)

    def _down(self, e: BaseException) -> None:
        self.note_down(e)
        self.stop.wait(self.backoff)
        self.backoff = min(self.backoff * 2, self.max_backoff_s)

    def up(self) -> None:
        import time

        if self.down_since is not None:
            log.warning("%s: redis back after %.1f s", self.name, time.monotonic() - self.down_since)
            self.down_since, self.backoff = None, 0.05

    def call(self, fn: Any, *a: Any, **kw: Any) -> Any:
        while True:
            try:
                out = fn(*a, **kw)
            except self.errors as e:
                if self.stop.is_set():
                    raise
                self._down(e)
                continue
            self.up()
            return out

    def run(self, step: Any, probe: Any = None) -> None:
        """``probe``: a cheap Redis call (``ping``) made before each step while down, so a
        step that happens not to touch Redis is not taken for the end of the outage."""
        while not self.stop.is_set():
            try:
                if probe is not None and self.down_since is not None:
                    probe()
                step()
            except self.errors as e:
                self._down(e)
                continue
            self.up()
