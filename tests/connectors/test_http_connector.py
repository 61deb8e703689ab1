"""The HTTP polling connector against a local stub server that throttles and fails.

This file is the template docs/connectors.md points to: a stub API (aiohttp, on a
free loopback port) plays a script of replies -- 429 with Retry-After, 5xx, a
reply slower than the timeout, a body that is not JSON, then data -- and records
when each request arrived, so the tests measure what the connector did (waited
what the host asked, spaced its requests, backed off, shared one reply) instead
of trusting its counters.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from hlquant.connectors.http import (
    FetchError,
    FetchOutcome,
    HttpPollingConnector,
    TTLCache,
    parse_retry_after,
)
from hlquant.core.errors import ConfigError

OK = {"data": [{"value": "42", "timestamp": "1767571200"}]}


class StubApi:
    """A JSON API on loopback that replies from a script (then ``default`` forever).

    A script step is ``("ok", payload)``, ``("429", retry_after_s)``, ``("status", code)``,
    ``("slow", seconds)`` or ``("text", body)``. ``arrivals[path]`` holds the monotonic
    time of each request."""

    def __init__(self, script: list[tuple[str, Any]] | None = None, default: tuple[str, Any] = ("ok", OK)) -> None:
        self.script = list(script or [])
        self.default = default
        self.arrivals: dict[str, list[float]] = {}
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.arrivals.setdefault(request.path, []).append(time.monotonic())
        kind, arg = self.script.pop(0) if self.script else self.default
        if kind == "429":
            return web.Response(status=429, headers={"Retry-After": str(arg)}, text="slow down")
        if kind == "status":
            return web.Response(status=arg, text="boom")
        if kind == "slow":
            await asyncio.sleep(arg)
            return web.json_response(OK)
        if kind == "text":
            return web.Response(text=arg, content_type="text/html")
        return web.json_response(arg)

    async def __aenter__(self) -> StubApi:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # the free port the OS chose
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.runner.cleanup()


def connector(url: str, **kw: Any) -> HttpPollingConnector:
    base = dict(fields={"fear_greed": "data.0.value"}, interval_s=0.01, timeout_s=0.3, rate_per_s=1000,
                burst=1000, backoff_base_s=0.02, max_backoff_s=0.1, cache_ttl_s=0.0, cache=TTLCache(),
                rng=random.Random(0))
    return HttpPollingConnector(url, **{**base, **kw})


async def collect(c: HttpPollingConnector, until: Callable[[list], bool], timeout_s: float = 15.0) -> list:
    got: list = []
    stop = asyncio.Event()

    async def run() -> None:
        async for ev in c.events(stop):
            got.append(ev)
            if until(got):
                stop.set()

    await asyncio.wait_for(run(), timeout_s)
    return got


def test_throttling_and_failures_then_data():
    """429 + Retry-After, two 5xx, a reply slower than the timeout, a body that is not
    JSON: every one is counted by outcome, none is fatal, and the data then arrives."""

    async def main() -> None:
        script = [("429", 1), ("status", 500), ("status", 503), ("slow", 1.0), ("text", "<html>oops")]
        async with StubApi(script) as api:
            c = connector(api.url + "/fng")
            got = await collect(c, lambda g: len(g) >= 1)
            t = api.arrivals["/fng"]
        assert [(e.name, e.value, e.symbol) for e in got] == [("fear_greed", 42.0, None)]
        assert got[0].ts_exch == got[0].ts_recv  # no ts_field: stamped on arrival
        assert t[1] - t[0] >= 0.95, "the second request must wait the Retry-After of the first"
        assert {k: c.counters[k] for k in ("throttled", "server_error", "timeout", "bad_payload", "ok")} == \
            {"throttled": 1, "server_error": 2, "timeout": 1, "bad_payload": 1, "ok": 1}
        assert c.counters["requests"] == 6

    asyncio.run(main())


def test_retry_after_holds_every_connector_asking_that_host():
    async def main() -> None:
        async with StubApi([("429", 1)]) as api:
            cache = TTLCache()
            a = connector(api.url + "/a", cache=cache)
            b = connector(api.url + "/b", cache=cache)
            async with aiohttp.ClientSession() as s:
                with pytest.raises(FetchError) as e:
                    await a.poll(s)
                assert e.value.outcome is FetchOutcome.THROTTLED and e.value.retryable
                assert e.value.retry_after_s == 1.0
                await b.poll(s)
            gap = api.arrivals["/b"][0] - api.arrivals["/a"][0]
        assert gap >= 0.95, f"b asked the throttled host after {gap:.3f} s"

    asyncio.run(main())


def test_token_bucket_spaces_requests():
    async def main() -> None:
        async with StubApi() as api:
            c = connector(api.url + "/fng", rate_per_s=10, burst=1)
            async with aiohttp.ClientSession() as s:
                for _ in range(6):
                    await c.poll(s)
            t = api.arrivals["/fng"]
        gaps = [b - a for a, b in zip(t, t[1:], strict=False)]
        # 10 requests/s, burst 1: sends 100 ms apart; arrivals move by the network's jitter
        # (the first also pays the connection set-up), hence the slack
        assert t[-1] - t[0] >= 0.45 and min(gaps[1:]) >= 0.08, gaps

    asyncio.run(main())


def test_one_reply_is_shared_by_connectors_asking_the_same_request():
    """Two connectors (say two strategies' series from one endpoint) asking at once, and
    again within the TTL, cost one request; after the TTL, one more."""
    now = [0.0]
    cache = TTLCache(clock=lambda: now[0])

    async def main() -> None:
        async with StubApi([("slow", 0.2)]) as api:
            a = connector(api.url + "/fng", cache=cache, cache_ttl_s=5.0)
            b = connector(api.url + "/fng", cache=cache, cache_ttl_s=5.0, fields={"fg": "data.0.value"})
            async with aiohttp.ClientSession() as s:
                ra, rb = await asyncio.gather(a.poll(s), b.poll(s))  # concurrent: one request in flight
                rc = await a.poll(s)  # within the TTL
                assert len(api.arrivals["/fng"]) == 1
                now[0] = 6.0
                await b.poll(s)
            assert len(api.arrivals["/fng"]) == 2
        assert [e.value for e in ra + rb + rc] == [42.0, 42.0, 42.0]
        assert (rb[0].name, a.counters["ok"], a.counters["cached"]) == ("fg", 1, 1)
        assert cache.hits == 2 and cache.misses == 2

    asyncio.run(main())


def test_a_client_error_is_final_and_waits_the_longest_backoff():
    async def main() -> None:
        async with StubApi([("status", 404)]) as api:
            c = connector(api.url + "/gone")
            async with aiohttp.ClientSession() as s:
                with pytest.raises(FetchError) as e:
                    await c.poll(s)
        assert e.value.outcome is FetchOutcome.CLIENT_ERROR and not e.value.retryable
        assert c.next_wait(e.value) == c.max_backoff_s

    asyncio.run(main())


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets_on_success():
    c = HttpPollingConnector("http://127.0.0.1:1/x", {"v": "v"}, backoff_base_s=1.0, max_backoff_s=8.0,
                             rng=random.Random(3))
    err = FetchError(FetchOutcome.SERVER_ERROR, "boom")
    waits = [c.next_wait(err) for _ in range(6)]
    caps = [1, 2, 4, 8, 8, 8]
    assert all(cap / 2 <= w <= cap for w, cap in zip(waits, caps, strict=True)), waits
    assert c.next_wait(None) == c.interval_s and c.failures == 0
    assert c.next_wait(FetchError(FetchOutcome.THROTTLED, "429", 7.5)) == 7.5


def test_unreachable_host_is_retryable():
    async def main() -> None:
        c = connector("http://127.0.0.1:9/x")  # discard port: nothing listens
        async with aiohttp.ClientSession() as s:
            with pytest.raises(FetchError) as e:
                await c.poll(s)
        assert e.value.outcome is FetchOutcome.UNREACHABLE and e.value.retryable

    asyncio.run(main())


def test_field_mapping_per_symbol_with_source_times():
    c = HttpPollingConnector("http://x.invalid/api", {"oi_change": "stats.oi_chg", "funding": "stats.fr"},
                             items="rows", symbol_field="coin", ts_field="t")
    recv = 1_767_571_300_000
    payload = {"rows": [{"coin": "BTC", "t": 1_767_571_200, "stats": {"oi_chg": "0.1", "fr": 1e-5}},
                        {"coin": "ETH", "t": "2026-01-05T00:00:30Z", "stats": {"oi_chg": -0.2, "fr": 2e-5}},
                        {"coin": "SOL", "t": recv + 60_000, "stats": {"oi_chg": 0.0, "fr": 0.0}}]}
    evs = c.normalize((payload, recv))
    got = {(e.symbol, e.name): (e.ts_exch, e.value) for e in evs}
    assert got[("BTC", "oi_change")] == (1_767_571_200_000, 0.1)  # seconds -> ms
    assert got[("ETH", "funding")] == (1_767_571_230_000, 2e-5)  # ISO-8601
    assert got[("SOL", "funding")][0] == recv  # a time in the future is clamped to the receive time
    assert c.normalize((payload, recv + 1000)) == []  # the API repeats itself: nothing new
    with pytest.raises(ValueError, match="no key 'oi_chg'"):
        c.normalize(({"rows": [{"coin": "BTC", "t": 1, "stats": {}}]}, recv))
    with pytest.raises(ValueError, match="not a number"):
        HttpPollingConnector("http://x.invalid/", {"v": "v"}).normalize(({"v": [1]}, recv))


def test_settings_are_checked_and_secrets_come_from_the_environment(monkeypatch):
    with pytest.raises(ConfigError, match="fields"):
        HttpPollingConnector("http://x.invalid/", {})
    with pytest.raises(ConfigError, match="url must be"):
        HttpPollingConnector("ftp://x/", {"v": "v"})
    with pytest.raises(ConfigError, match="rate_per_s"):
        HttpPollingConnector("http://x.invalid/", {"v": "v"}, rate_per_s=0)
    c = HttpPollingConnector("http://x.invalid/", {"v": "v"}, headers_env={"X-Api-Key": "STUB_API_KEY"})
    with pytest.raises(ConfigError, match="STUB_API_KEY"):
        c._headers()
    monkeypatch.setenv("STUB_API_KEY", "k123")
    assert c._headers() == {"X-Api-Key": "k123"}


def test_retry_after_header_forms():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(formatdate(1000.0 + 30, usegmt=True), now_s=1000.0) == pytest.approx(30.0)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_poll_results_are_json_round_trippable():
    """What a poll emits is a Signal like any connector's (bus encoding included)."""
    from hlquant.bus.redis_state import pack, unpack

    c = HttpPollingConnector("http://x.invalid/", {"v": "v"}, symbol="BTC")
    (ev,) = c.normalize(({"v": 1.5}, 1000))
    assert unpack(pack(ev)) == ev and json.loads(json.dumps(ev.to_record()))["symbol"] == "BTC"
