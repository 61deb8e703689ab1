"""Hyperliquid WebSocket connector: market data and user channels as core events.

What keeps a live feed honest:

- an application ``ping`` well inside the server's 60 s idle timeout, and a
  silence timer that treats a quiet socket as dead;
- reconnect with capped exponential backoff and full jitter, resubscribing
  every subscription;
- after any reconnect (a gap by definition) a resync: fresh l2Book snapshots
  from REST, and the fills missed while disconnected recovered with
  ``userFillsByTime`` from the last seen fill, de-duplicated by ``tid`` (the
  ``userFills`` snapshot after a resubscribe is de-duplicated the same way);
- candles are emitted once, when closed (the channel repeats the open one);
- a frame never raises: a malformed or unexpected one is dropped, counted
  (``bad_messages``) and logged at a bounded rate, and every price and size
  the feed emits is a finite positive number.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import websockets
from websockets.asyncio.client import connect

from hlquant.bus.base import EventBus
from hlquant.connectors.base import Connector
from hlquant.core.events import (
    BBO,
    BookSnapshot,
    Candle,
    Event,
    Fill,
    FundingPayment,
    FundingRate,
    MarkPrice,
    OrderAck,
    OrderStatus,
    Trade,
)
from hlquant.hyperliquid import normalize as nz
from hlquant.hyperliquid.info import InfoClient

log = logging.getLogger(__name__)

WELCOME = "Websocket connection established."
MAX_TIDS = 100_000
BAD_LOG_INTERVAL_S = 10.0
IGNORED_CHANNELS = frozenset({"subscriptionResponse", "allMids", "post", "webData2", "activeAssetData",
                              "userNonFundingLedgerUpdates", "notification"})


def _ok(x: float) -> bool:
    return math.isfinite(x) and x > 0


def sane(ev: Event) -> bool:
    """Every price and size of a market or user event is finite and positive."""
    if isinstance(ev, Trade):
        return _ok(ev.px) and _ok(ev.sz)
    if isinstance(ev, BookSnapshot):
        return all(_ok(p) and _ok(q) for p, q in ev.bids) and all(_ok(p) and _ok(q) for p, q in ev.asks)
    if isinstance(ev, BBO):
        return _ok(ev.bid_px) and _ok(ev.bid_sz) and _ok(ev.ask_px) and _ok(ev.ask_sz)
    if isinstance(ev, Candle):
        return all(_ok(x) for x in (ev.open, ev.high, ev.low, ev.close)) and math.isfinite(ev.volume) \
            and ev.volume >= 0
    if isinstance(ev, MarkPrice):
        return _ok(ev.mark_px) and (ev.oracle_px != ev.oracle_px or _ok(ev.oracle_px))
    if isinstance(ev, FundingRate):
        return math.isfinite(ev.rate) and math.isfinite(ev.premium)
    if isinstance(ev, Fill):
        return _ok(ev.px) and _ok(ev.sz) and math.isfinite(ev.fee) and math.isfinite(ev.closed_pnl)
    if isinstance(ev, OrderAck):
        return math.isfinite(ev.filled_sz) and ev.filled_sz >= 0
    if isinstance(ev, FundingPayment):
        return math.isfinite(ev.amount) and math.isfinite(ev.position) and math.isfinite(ev.rate)
    return True


def market_subscriptions(coins: Sequence[str], candle_interval: str | None = "1m",
                         l2: bool = True, trades: bool = True, bbo: bool = False,
                         ctx: bool = True) -> list[dict[str, Any]]:
    subs: list[dict[str, Any]] = []
    for c in coins:
        if l2:
            subs.append({"type": "l2Book", "coin": c})
        if trades:
            subs.append({"type": "trades", "coin": c})
        if bbo:
            subs.append({"type": "bbo", "coin": c})
        if candle_interval:
            subs.append({"type": "candle", "coin": c, "interval": candle_interval})
        if ctx:
            subs.append({"type": "activeAssetCtx", "coin": c})
    return subs


def user_subscriptions(user: str) -> list[dict[str, Any]]:
    """User channels, keyed by the *master* account address (never the agent's)."""
    return [{"type": t, "user": user} for t in ("orderUpdates", "userFills", "userFundings")]


class HyperliquidFeed(Connector):
    name = "hyperliquid"

    def __init__(
        self,
        ws_url: str,
        subscriptions: Sequence[dict[str, Any]],
        *,
        info: InfoClient | None = None,
        bus: EventBus | None = None,
        clock_ms: Callable[[], int] | None = None,
        ping_s: float = 20.0,
        silence_s: float = 45.0,
        backoff_base_s: float = 0.25,
        backoff_max_s: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(bus)
        self.ws_url = ws_url
        self.subscriptions = [dict(s) for s in subscriptions]
        self.info = info
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.ping_s, self.silence_s = ping_s, silence_s
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.rng = rng or random.Random()
        for k in ("connects", "reconnects", "gaps", "resyncs", "recovered_fills", "duplicate_fills",
                  "pongs", "errors", "subscribed"):
            self.counters[k] = 0
        self._tids: OrderedDict[int, None] = OrderedDict()
        self.last_fill_ms = 0
        self._open_candle: dict[tuple[str, str], dict[str, Any]] = {}
        self._funding_hour: dict[str, int] = {}
        self._ws: Any = None
        self.connected = asyncio.Event()
        self.bad_log_interval_s = BAD_LOG_INTERVAL_S
        self._bad_logged_at = -math.inf
        self._bad_suppressed = 0
        # asset contexts as signals too (hlquant.hyperliquid.context), when a connector asks
        self.ctx_signals: Any = None

    # ------------------------------------------------------------------ Connector API
    async def connect(self) -> Any:
        """Open one connection and subscribe everything (used by ``events``)."""
        ws = await connect(self.ws_url, ping_interval=None, open_timeout=10, close_timeout=2,
                           max_size=8 * 1024 * 1024)
        for sub in self.subscriptions:
            await ws.send(json.dumps({"method": "subscribe", "subscription": sub}))
        self.counters["connects"] += 1
        self._ws = ws
        self.connected.set()
        return ws

    def normalize(self, raw: Any) -> list[Event]:
        """One frame (text, bytes or decoded dict) -> events. Never raises: a frame that
        is not what the exchange sends is dropped, counted and logged (rate-bounded)."""
        try:
            evs = self._normalize(raw)
        except Exception as e:  # any shape at all may arrive on the wire
            self._bad(raw, e)
            return []
        if all(sane(ev) for ev in evs):
            return evs
        self._bad(raw, ValueError("non-finite or non-positive price or size"))
        return [ev for ev in evs if sane(ev)]

    def _bad(self, raw: Any, e: BaseException) -> None:
        self.counters["bad_messages"] += 1
        now = time.monotonic()
        if now - self._bad_logged_at >= self.bad_log_interval_s:
            more = f" (+{self._bad_suppressed} more since the last report)" if self._bad_suppressed else ""
            log.warning("dropped a bad hyperliquid frame (%s: %s)%s: %.200r", type(e).__name__, e, more, raw)
            self._bad_logged_at = now
            self._bad_suppressed = 0
        else:
            self._bad_suppressed += 1

    def _normalize(self, raw: Any) -> list[Event]:
        if isinstance(raw, (str, bytes, bytearray)):
            if raw == WELCOME or raw == WELCOME.encode():
                return []
            msg = json.loads(raw)
        else:
            msg = raw
        if not isinstance(msg, dict) or "channel" not in msg:
            raise ValueError("not a channel message")
        ch, d = msg["channel"], msg.get("data")
        recv = self.clock_ms()
        if ch == "l2Book":
            return [nz.l2_book(d, recv)]
        if ch == "trades":
            return list(nz.trades(d, recv))
        if ch == "bbo":
            b = nz.bbo(d, recv)
            return [b] if b is not None else []
        if ch == "candle":
            return self._candle(d, recv)
        if ch == "activeAssetCtx":
            return self._ctx(d, recv)
        if ch == "orderUpdates":
            if not isinstance(d, list):
                raise ValueError("orderUpdates data is not a list")
            return [nz.order_update(u, recv) for u in d]
        if ch == "userFills":
            fills = d["fills"]
            if not isinstance(fills, list):
                raise ValueError("fills is not a list")
            return self._fills(fills, recv, snapshot=bool(d.get("isSnapshot")))
        if ch == "user":
            if not isinstance(d, dict):
                raise ValueError("user event is not an object")
            out: list[Event] = []
            if "fills" in d:
                out += self._fills(list(d["fills"]), recv, snapshot=False)
            if "funding" in d:
                out.append(nz.user_funding({**d["funding"], "time": d["funding"].get("time", recv)}, recv))
            if "nonUserCancel" in d:  # the exchange cancelled these orders (e.g. the dead man's switch)
                out += [OrderAck(recv, recv, "", nz.text(c["coin"], "coin"), OrderStatus.CANCELED, int(c["oid"]))
                        for c in d["nonUserCancel"]]
            return out
        if ch == "userFundings":
            if d.get("isSnapshot"):
                return []
            return [nz.user_funding(f, recv) for f in d["fundings"]]
        if ch == "pong":
            self.counters["pongs"] += 1
            return []
        if ch in IGNORED_CHANNELS:
            if ch == "subscriptionResponse":
                self.counters["subscribed"] += 1
            return []
        if ch == "error":
            self.counters["errors"] += 1
            log.warning("hyperliquid ws error: %.300s", d)
            return []
        raise ValueError(f"unexpected channel {ch!r}")

    # ------------------------------------------------------------------ pieces
    def _candle(self, d: dict[str, Any], recv: int) -> list[Event]:
        nz.candle(d, recv)  # refuse a malformed candle now, not when the next one closes it
        key = (d["s"], d["i"])
        prev = self._open_candle.get(key)
        self._open_candle[key] = d
        if prev is not None and int(d["t"]) > int(prev["t"]):
            return [nz.candle(prev, recv)]  # the previous candle is closed: final values
        return []

    def _ctx(self, d: dict[str, Any], recv: int) -> list[Event]:
        out = nz.asset_ctx(d, recv)
        c = d["ctx"]
        hour = recv // 3_600_000
        last = self._funding_hour.get(d["coin"])
        if last is not None and hour > last and c.get("funding") is not None:
            oracle = nz.positive(c["oraclePx"], "oraclePx") if c.get("oraclePx") is not None else float("nan")
            out.append(FundingRate(hour * 3_600_000, recv, d["coin"], nz.finite(c["funding"], "funding"),
                                   nz.finite(c.get("premium") or 0.0, "premium"), oracle))
        self._funding_hour[d["coin"]] = hour
        if self.ctx_signals is not None:
            out += self.ctx_signals.normalize(d, recv)
        return out

    def _fills(self, fills: list[dict[str, Any]], recv: int, snapshot: bool) -> list[Event]:
        parsed: list[Fill] = []
        for f in fills:  # a bad fill is dropped alone; the good ones of its frame still count
            try:
                parsed.append(nz.fill(f, recv))
            except Exception as e:
                self._bad(f, e)
        out: list[Event] = []
        for ev in parsed:
            if not self.remember_tid(ev.tid):
                self.counters["duplicate_fills"] += 1
                continue
            out.append(ev)
        if snapshot and out:
            self.counters["recovered_fills"] += len(out)
        return out

    def remember_tid(self, tid: int) -> bool:
        """True the first time a fill id is seen (a bounded set: oldest forgotten)."""
        if tid in self._tids:
            return False
        self._tids[tid] = None
        if len(self._tids) > MAX_TIDS:
            self._tids.popitem(last=False)
        return True

    def seed_tids(self, fills: Sequence[Fill]) -> None:
        """Mark fills already known (e.g. loaded at start-up) so they are never re-emitted."""
        for f in fills:
            self.remember_tid(f.tid)
            self.last_fill_ms = max(self.last_fill_ms, f.ts_exch)

    def _users(self) -> list[str]:
        return sorted({s["user"] for s in self.subscriptions if s.get("type") == "userFills"})

    async def _resync(self) -> list[Event]:
        """After a gap: fresh book snapshots and fills missed while disconnected."""
        if self.info is None:
            return []
        self.counters["resyncs"] += 1
        out: list[Event] = []
        for s in self.subscriptions:
            if s.get("type") == "l2Book":
                try:
                    out.append(await asyncio.to_thread(self.info.l2_book, s["coin"]))
                except Exception as e:  # resync is best effort; the next snapshot heals the book
                    log.warning("resync l2Book %s failed: %s", s["coin"], e)
        for user in self._users():
            try:
                fills = await asyncio.to_thread(self.info.user_fills_by_time, user, max(self.last_fill_ms - 1, 0))
            except Exception as e:
                log.warning("resync fills for %s failed: %s", user, e)
                continue
            for f in fills:
                if self.remember_tid(f.tid):
                    self.counters["recovered_fills"] += 1
                    out.append(f)
        return out

    async def _pinger(self, ws: Any) -> None:
        while True:
            await asyncio.sleep(self.ping_s)
            await ws.send(json.dumps({"method": "ping"}))

    def _backoff(self, attempt: int) -> float:
        cap = min(self.backoff_max_s, self.backoff_base_s * (2 ** max(attempt - 1, 0)))
        return self.rng.uniform(cap / 2, cap)  # "equal jitter": never zero, never above the cap

    # ------------------------------------------------------------------ streams
    async def events(self, stop: asyncio.Event | None = None) -> AsyncIterator[Event]:
        """Events forever (until ``stop``), across reconnects."""
        stop = stop or asyncio.Event()
        attempt = 0
        first = True
        while not stop.is_set():
            try:
                ws = await self.connect()
            except (OSError, TimeoutError, websockets.InvalidHandshake) as e:
                attempt += 1
                self.counters["reconnects"] += 1
                log.warning("hyperliquid ws connect failed (%s); retry %d", e, attempt)
                await _pause(stop, self._backoff(attempt))
                continue
            attempt = 0
            if not first:
                self.counters["gaps"] += 1
                for ev in await self._resync():
                    yield self._seen(ev)
            first = False
            pinger = asyncio.create_task(self._pinger(ws))
            closer = asyncio.create_task(_close_on(stop, ws))  # unblocks recv() when stopped
            try:
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout=self.silence_s)
                    except TimeoutError:
                        log.warning("hyperliquid ws silent for %.0fs: reconnecting", self.silence_s)
                        break
                    self.counters["messages"] += 1
                    for ev in self.normalize(raw):
                        yield self._seen(ev)
            except websockets.ConnectionClosed as e:
                (log.info if isinstance(e, websockets.ConnectionClosedOK) else log.warning)("hyperliquid ws closed: %s", e)
            finally:
                pinger.cancel()
                closer.cancel()
                self.connected.clear()
                await ws.close()
            if not stop.is_set():
                attempt += 1
                self.counters["reconnects"] += 1
                await _pause(stop, self._backoff(attempt))

    def _seen(self, ev: Event) -> Event:
        self.counters["events"] += 1
        if isinstance(ev, Fill):
            self.last_fill_ms = max(self.last_fill_ms, ev.ts_exch)
        return ev

    async def run(self, sink: Callable[[Event], None] | None = None, stop: asyncio.Event | None = None) -> int:
        """Pump events into ``sink`` (or the bus) until ``stop``."""
        n = 0
        async for ev in self.events(stop):
            if sink is not None:
                sink(ev)
            elif self.bus is not None:
                self.emit([ev])
            n += 1
        return n

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait out a reconnect backoff, but stop at once when asked (a SIGTERM'd process
    must not sit out a 30 s backoff)."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


async def _close_on(stop: asyncio.Event, ws: Any) -> None:
    await stop.wait()
    await ws.close()
