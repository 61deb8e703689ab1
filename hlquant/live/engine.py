"""LiveEngine: the same components as the backtest, driven one event at a time.

Paper mode = live market data (a Connector's events) + the SimVenue; live
mode = the same + the Hyperliquid venue. Agents, Blackboard, RiskEngine,
OrderRouter, Portfolio and AuditLog are the very classes the backtest uses;
only the clock (wall time), the feature path (incremental kernels through a
FeatureProcessor) and the backends (memory or Redis) differ.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

from hlquant.agents.base import Agent
from hlquant.agents.blackboard import (
    Blackboard,
    HeartbeatStore,
    InMemoryBlackboard,
    InMemoryHeartbeats,
)
from hlquant.agents.runner import AgentRunner
from hlquant.audit.log import AuditLog
from hlquant.backtest.engine import resolve_feature_specs
from hlquant.core.clock import Clock, WallClock
from hlquant.core.events import (
    BBO,
    BookSnapshot,
    Candle,
    Event,
    Fill,
    FundingPayment,
    FundingRate,
    MarkPrice,
    Trade,
)
from hlquant.features.kernels import parse_specs
from hlquant.features.pipeline import FeatureProcessor
from hlquant.features.store import FeatureStore, InMemoryFeatureStore
from hlquant.portfolio.portfolio import Portfolio
from hlquant.risk.engine import RiskConfig, RiskEngine
from hlquant.router.idempotency import IdempotencyStore, InMemoryIdempotencyStore
from hlquant.router.router import OrderRouter, RouterConfig
from hlquant.venues.base import Venue

log = logging.getLogger(__name__)

_TRIGGER = {Candle: "candle", Trade: "trade", BookSnapshot: "l2", FundingRate: "funding"}


class LiveEngine:
    """Event-at-a-time engine for paper and live trading.

    ``venue`` is a SimVenue (paper) or a HyperliquidVenue (live); if it has the
    SimVenue's market-feed methods it is fed every market event.
    """

    def __init__(
        self,
        agents: Sequence[Agent],
        venue: Venue,
        *,
        audit: AuditLog,
        risk: RiskConfig | None = None,
        router: RouterConfig | None = None,
        clock: Clock | None = None,
        store: FeatureStore | None = None,
        blackboard: Blackboard | None = None,
        heartbeats: HeartbeatStore | None = None,
        idempotency: IdempotencyStore | None = None,
        staleness: Mapping[str, int] | None = None,
        initial_cash: float = 100_000.0,
        dead_mans_switch_ms: int = 0,
    ) -> None:
        self.clock = clock or WallClock()
        self.audit = audit
        self.venue = venue
        self.agents = list(agents)
        self.store = store or InMemoryFeatureStore(staleness or {"default": 500})
        self.blackboard = blackboard or InMemoryBlackboard()
        self.heartbeats = heartbeats or InMemoryHeartbeats()
        self.portfolio = Portfolio(initial_cash)
        self.router = OrderRouter(
            venue, idempotency or InMemoryIdempotencyStore(), self.clock, audit, router or RouterConfig()
        )
        self.risk = RiskEngine(
            risk or RiskConfig(), self.blackboard, self.heartbeats, self.portfolio, self.router,
            audit, self.clock,
        )
        specs, aliases = resolve_feature_specs(self.agents)
        symbols = sorted({s for a in self.agents for s in a.symbols})
        self.features = FeatureProcessor(parse_specs(specs), self.store, symbols) if specs else None
        marks = self.portfolio.marks
        self.runner = AgentRunner(
            self.agents, self.blackboard, self.heartbeats, self.store, self.portfolio,
            lambda s: marks.get(s, float("nan")), self.risk.on_intent, audit, aliases,
        )
        for a in self.agents:
            self.risk.register_agent(a.name)
        self.router.sinks.append(self._on_venue_event)
        self._feed = hasattr(venue, "on_candle")
        self.dead_mans_switch_ms = dead_mans_switch_ms
        self._dms_armed_until = 0
        self.events = 0
        self.fills: list[Fill] = []
        self._started = False
        self._hb_check_ms = min((a.config.heartbeat_ms for a in self.agents), default=1000)
        self._next_hb_check = 0

    def _on_venue_event(self, ev: Event) -> None:
        if isinstance(ev, Fill):
            self.portfolio.on_fill(ev)
            self.fills.append(ev)
        elif isinstance(ev, FundingPayment):
            self.portfolio.on_funding(ev)

    def start(self) -> None:
        if not self._started:
            now = self.clock.now_ms()
            self.runner.start(now)
            self._next_hb_check = now + self._hb_check_ms
            self._started = True

    # ------------------------------------------------------------------
    def on_event(self, ev: Event) -> None:
        """Process one market event through the whole data flow."""
        self.start()
        self.events += 1
        now = self.clock.now_ms()
        if hasattr(self.clock, "advance_to"):
            self.clock.advance_to(ev.ts_exch)  # a SimClock in tests/replays follows the events
            now = self.clock.now_ms()
        v = self.venue
        sym = getattr(ev, "symbol", "")
        if isinstance(ev, Candle):
            if self._feed:
                v.on_candle(sym, ev.ts_exch, ev.open, ev.high, ev.low, ev.close, ev.volume)
            self._price(sym, ev.close, ev.ts_exch)
        elif isinstance(ev, Trade):
            if self._feed:
                v.on_trade(sym, ev.ts_exch, int(ev.side), ev.px, ev.sz)
            self._price(sym, ev.px, ev.ts_exch)
        elif isinstance(ev, BookSnapshot):
            if self._feed:
                import numpy as np

                bp = np.array([p for p, _ in ev.bids], float)
                bs = np.array([s for _, s in ev.bids], float)
                ap = np.array([p for p, _ in ev.asks], float)
                as_ = np.array([s for _, s in ev.asks], float)
                v.on_book(sym, ev.ts_exch, bp, bs, ap, as_)
            if ev.bids and ev.asks:
                self._price(sym, (ev.bids[0][0] + ev.asks[0][0]) / 2, ev.ts_exch)
        elif isinstance(ev, BBO):
            if self._feed:
                v.on_bbo(sym, ev.ts_exch, ev.bid_px, ev.bid_sz, ev.ask_px, ev.ask_sz)
            self._price(sym, (ev.bid_px + ev.ask_px) / 2, ev.ts_exch)
        elif isinstance(ev, FundingRate):
            if self._feed:
                v.on_funding(sym, ev.ts_exch, ev.rate, ev.oracle_px)
        elif isinstance(ev, MarkPrice):
            if self._feed:
                v.on_mark(sym, ev.ts_exch, ev.mark_px)
            self.portfolio.mark(sym, ev.mark_px)
        if self.features is not None:
            self.features.on_event(ev)
        kind = _TRIGGER.get(type(ev))
        if kind is not None and sym:
            self.runner.on_trigger(kind, sym, now)
        self.tick(now)

    def _price(self, sym: str, px: float, ts: int) -> None:
        self.portfolio.mark(sym, px)
        self.risk.on_price(sym, px, ts)

    def tick(self, now: int | None = None) -> None:
        """Housekeeping that must run even without market data: heartbeats,
        dead agents, the exchange dead man's switch, queued orders."""
        now = self.clock.now_ms() if now is None else now
        if self._feed and hasattr(self.venue, "advance"):
            self.venue.advance(now)
        if now >= self.runner.next_beat_due:
            self.runner.heartbeat(now)
        if now >= self._next_hb_check:
            self.risk.check_heartbeats(now)
            self._next_hb_check = now + self._hb_check_ms
        if self.dead_mans_switch_ms and now + self.dead_mans_switch_ms // 2 >= self._dms_armed_until:
            self._dms_armed_until = now + self.dead_mans_switch_ms
            self.venue.schedule_cancel(self._dms_armed_until)
        if self.router.has_work:
            self.router.flush()
        self.risk.on_equity(self.portfolio.equity())

    def run_events(self, events: Iterable[Event]) -> int:
        n = 0
        for ev in events:
            self.on_event(ev)
            n += 1
        return n

    async def run(self, source: AsyncIterator[Event], stop: asyncio.Event | None = None,
                  tick_s: float = 0.25) -> int:
        """Consume an async event source until it ends or ``stop`` is set; ticks
        housekeeping at least every ``tick_s`` seconds when the feed is quiet."""
        stop = stop or asyncio.Event()
        it = source.__aiter__()
        n0 = self.events
        while not stop.is_set():
            try:
                ev = await asyncio.wait_for(it.__anext__(), timeout=tick_s)
            except TimeoutError:
                self.tick()
                continue
            except StopAsyncIteration:
                break
            self.on_event(ev)
        return self.events - n0

    def reconcile(self, tol: float = 1e-9) -> dict[str, tuple[float, float]]:
        """Compare positions with the venue's; on a mismatch audit it, recover missed
        fills if the venue can, and if a gap remains, adopt the venue's position
        (audited as a correction). Returns the mismatches found before resolving."""
        venue_pos = self.venue.positions()
        diff = self.portfolio.reconcile(venue_pos, tol)
        if not diff:
            return {}
        now = self.clock.now_ms()
        self.audit.record_dict({"kind": "PositionMismatch", "ts_exch": now, "ts_recv": now, "agent": "",
                                "symbol": ",".join(sorted(diff)),
                                "diff": {s: list(v) for s, v in diff.items()}})
        recover = getattr(self.venue, "recover_fills", None)
        if recover is not None:
            recover()
            if self.router.has_work:
                self.router.flush()
            venue_pos = self.venue.positions()
        for sym, (mine, theirs) in self.portfolio.reconcile(venue_pos, tol).items():
            self.portfolio.set_position(sym, theirs, self.portfolio.marks.get(sym, 0.0))
            self.audit.record_dict({"kind": "PositionCorrected", "ts_exch": now, "ts_recv": now, "agent": "",
                                    "symbol": sym, "from": mine, "to": theirs})
        return diff

    def shutdown(self, cancel_open: bool = True) -> None:
        """Clean stop: optionally cancel open orders, disarm the switch, flush the audit."""
        if cancel_open:
            self.router.cancel_all("shutdown")
            self.router.flush()
        if self.dead_mans_switch_ms:
            try:
                self.venue.schedule_cancel(None)
            except Exception as e:  # disarming is best effort; the switch fires anyway
                log.warning("could not disarm scheduleCancel: %s", e)
        self.audit.close()

    def status(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "equity": self.portfolio.equity(),
            "positions": {s: p.size for s, p in self.portfolio.positions.items() if p.size},
            # PnL kept apart: trading (realized + unrealized), fees paid, funding received
            "pnl": {"trading": self.portfolio.realized() + self.portfolio.unrealized(),
                    "fees": self.portfolio.fees(), "funding": self.portfolio.funding()},
            "open_orders": len(self.router.open),
            "risk": dict(self.risk.counts),
            "agents": dict(self.runner.counts),
            "killed": self.risk.kill_reason if self.risk.killed else "",
            "time": time.time(),
        }
