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
- a malformed or unexpected message is logged and counted, never fatal.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import websockets
from websockets.asyncio.client import connect

from hlquant.bus.base import EventBus
from hlquant.connectors.base import Connector
from hlquant.core.events import Event, Fill, FundingRate
from hlquant.hyperliquid import normalize as nz
from hlquant.hyperliquid.info import InfoClient

log = logging.getLogger(__name__)

WELCOME = "Websocket connection established."
MAX_TIDS = 100_000


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
        """One frame (text or decoded dict) -> events. Raises ValueError on a bad shape."""
        if isinstance(raw, (str, bytes)):
            if raw == WELCOME:
                return []
            msg = json.loads(raw)
        else:
            msg = raw
        if not isinstance(msg, dict) or "channel" not in msg:
            raise ValueError(f"not a channel message: {str(raw)[:120]}")
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
            return [nz.order_update(u, recv) for u in d]
        if ch == "userFills":
            return self._fills(d.get("fills", []), recv, snapshot=bool(d.get("isSnapshot")))
        if ch == "user":
            out: list[Event] = []
            if "fills" in d:
                out += self._fills(d["fills"], recv, snapshot=False)
            if "funding" in d:
                out.append(nz.user_funding(d["funding"], recv))
            return out
        if ch == "userFundings":
            if d.get("isSnapshot"):
                return []
            return [nz.user_funding(f, recv) for f in d.get("fundings", [])]
        if ch == "pong":
            self.counters["pongs"] += 1
            return []
        if ch in ("subscriptionResponse", "allMids", "post"):
            if ch == "subscriptionResponse":
                self.counters["subscribed"] += 1
            return []
        if ch == "error":
            self.counters["errors"] += 1
            log.warning("hyperliquid ws error: %s", d)
            return []
        raise ValueError(f"unexpected channel {ch!r}")

    # ------------------------------------------------------------------ pieces
    def _candle(self, d: dict[str, Any], recv: int) -> list[Event]:
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
        self._funding_hour[d["coin"]] = hour
        if last is not None and hour > last and c.get("funding") is not None:
            oracle = float(c["oraclePx"]) if c.get("oraclePx") is not None else float("nan")
            out.append(FundingRate(hour * 3_600_000, recv, d["coin"], float(c["funding"]),
                                   float(c.get("premium") or 0.0), oracle))
        return out

    def _fills(self, fills: list[dict[str, Any]], recv: int, snapshot: bool) -> list[Event]:
        out: list[Event] = []
        for f in fills:
            ev = nz.fill(f, recv)
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
                await asyncio.sleep(self._backoff(attempt))
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
                    try:
                        evs = self.normalize(raw)
                    except (ValueError, KeyError, TypeError, IndexError) as e:
                        self.counters["bad_messages"] += 1
                        log.warning("bad hyperliquid message (%s): %.200s", e, raw)
                        continue
                    for ev in evs:
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
                await asyncio.sleep(self._backoff(attempt))

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


async def _close_on(stop: asyncio.Event, ws: Any) -> None:
    await stop.wait()
    await ws.close()
