"""LiveEngine: a kernel driven one event at a time, on the wall clock.

Paper mode = live market data (a Connector's events) + the SimVenue; live
mode = the same + the Hyperliquid venue. The components are the kernel's
(``build_kernel``) and every market event takes the kernel's one path
(``MarketHandler``), exactly as in the backtest; what differs is the clock,
the feature path (incremental kernels through a ``FeatureProcessor`` instead
of precomputed columns) and how events arrive (an async source, with
``tick`` keeping time-driven housekeeping going while the feed is quiet).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hlquant.agents.base import Agent
from hlquant.config.connectors import build_connectors
from hlquant.config.spec import DEFAULT_STALENESS, KernelSpec
from hlquant.core.clock import Clock
from hlquant.core.events import Event
from hlquant.features.kernels import parse_specs
from hlquant.features.pipeline import FeatureProcessor
from hlquant.kernel import Kernel, MarketHandler, Role, build_kernel
from hlquant.live.reconcile import reconcile_positions
from hlquant.risk.engine import RiskConfig
from hlquant.router.router import RouterConfig
from hlquant.venues.sim import SimVenueConfig

log = logging.getLogger(__name__)


class LiveEngine:
    """Event-at-a-time engine for paper and live trading over a :class:`Kernel`."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = k = kernel
        self.features = (FeatureProcessor(parse_specs(k.feature_specs), k.store, k.symbols)
                         if k.feature_specs else None)
        self.handler = MarketHandler(k, features=self.features, faults=k.spec.faults)
        self.clock, self.audit, self.venue, self.agents = k.clock, k.audit, k.venue, k.agents
        self.store, self.portfolio, self.router, self.risk, self.runner = (
            k.store, k.portfolio, k.router, k.risk, k.runner)
        self.blackboard, self.heartbeats = k.blackboard, k.heartbeats
        self.fills = k.fills
        self.sources: list[Any] = []  # extra connectors (signals) a session iterates beside the feed

    @classmethod
    def for_agents(cls, agents: Sequence[Agent], venue: Any, *, mode: str = "paper",
                   risk: RiskConfig | None = None, router: RouterConfig | None = None,
                   venue_config: SimVenueConfig | None = None, clock: Clock | None = None,
                   staleness: Mapping[str, int] | None = None, on_error: str | None = None,
                   out_dir: str | Path | None = None, session: str | None = None) -> LiveEngine:
        """An engine over ``venue`` for these agents (tests, drills, the pre-flight check)."""
        spec = KernelSpec(agents=list(agents), mode=mode, venue=venue_config or SimVenueConfig(),
                          risk=risk or RiskConfig(), router=router or RouterConfig(),
                          staleness=dict(staleness or DEFAULT_STALENESS), on_error=on_error)
        return cls(build_kernel(spec, Role.ALL, assets=venue.assets(), clock=clock, venue=venue,
                                out_dir=out_dir, session=session))

    @property
    def events(self) -> int:
        return self.handler.events

    def start(self) -> None:
        self.handler.start(self.clock.now_ms())

    # ------------------------------------------------------------------
    def on_event(self, ev: Event) -> None:
        """Process one market event through the whole data flow."""
        self.handler.on_event(ev)

    def tick(self) -> None:
        """Housekeeping that must run even without market data: heartbeats, dead
        agents, the exchange dead man's switch, queued orders, ambiguous orders."""
        self.handler.tick()
        if self.router.unknown:
            self.router.resolve_unknown()

    def run_events(self, events: Iterable[Event]) -> int:
        n = 0
        for ev in events:
            self.handler.on_event(ev)
            n += 1
        self.handler.finish()
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
        recover = getattr(self.venue, "recover_fills", None)

        def recover_and_apply() -> None:
            recover()
            if self.router.has_work:
                self.router.flush()

        return reconcile_positions(self.portfolio, self.venue.positions, self.audit, self.clock.now_ms(),
                                   recover_and_apply if recover is not None else None, tol)

    def shutdown(self, cancel_open: bool = True) -> None:
        """Clean stop: optionally cancel open orders, disarm the switch, flush the audit."""
        try:
            self.handler.finish(flush=False)
            self.router.drop_queued("shutdown")  # nothing new goes out while stopping
            if cancel_open:
                self.router.cancel_all("shutdown")
                self.router.flush()
            try:
                self.router.disarm_switch()
            except Exception as e:  # disarming is best effort; the switch fires anyway
                log.warning("could not disarm scheduleCancel: %s", e)
        finally:
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


def replay_market(spec: KernelSpec, market: Any, out_dir: str | Path | None = None) -> LiveEngine:
    """Run recorded market data through the event-at-a-time engine on an event clock with
    the SimVenue: what paper trading does, deterministically (pre-flight, parity tests)."""
    from hlquant.connectors.replay import ReplayConnector
    from hlquant.core.assets import known_assets
    from hlquant.core.clock import SimClock

    if spec.mode != "paper":
        raise ValueError(f"replay_market runs the paper kernel (SimVenue), not mode={spec.mode!r}")
    clock = SimClock(int(market.span()[0]) if len(market) else 0)
    known = known_assets(list(market.symbols))
    assets = {s: known[s] for s in market.symbols}
    engine = LiveEngine(build_kernel(spec, Role.ALL, assets=assets, clock=clock, out_dir=out_dir))
    events: Iterable[Event] = ReplayConnector(market)
    sources = build_connectors(spec.connectors, "sim", list(market.symbols))  # their history, as a backtest
    if sources and len(market):
        from hlquant.connectors.replay import with_signals
        from hlquant.data.series import SignalSeries

        series = SignalSeries.concat([c.history(market) for c in sources.values()]).select(symbols=market.symbols)
        events = with_signals(events, series, *(int(t) for t in market.span()))
    engine.run_events(events)
    return engine
