"""The one path of a market event through a kernel, in every mode and topology.

A market event, whoever delivers it, is applied here and only here: the
venue sees it first (a SimVenue matches resting orders and triggers), then
the marks, the risk engine's price, the features an agent will read, and
finally the agents whose trigger it is. Housekeeping that depends only on
time (heartbeats, heartbeat checks, the venue's clock, the drawdown check,
equity sampling, the dead man's switch) runs in ``advance`` whenever event
time moves forward.

The backtest's loop calls the scalar methods straight from its columns;
live code calls ``on_event`` with event objects (through
``dispatch_market``) and ``tick`` when the feed is quiet. Components a role
does not have (an agent process has no venue or risk engine; the risk
process has no agents) are simply absent: the path is the same.

Equity is sampled once per bar (a candle closed at that time, in both modes)
and the drawdown kill switch is checked every time event time advances after
any price moved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hlquant.core.events import Event, FeaturesReady
from hlquant.core.market import dispatch_market

if TYPE_CHECKING:
    from hlquant.kernel.components import Kernel

TRIGGER_KINDS = ("candle", "trade", "l2", "funding")
"""Market streams an agent can be triggered by (``AgentConfig.trigger``)."""


class EquityCurve:
    """Equity and per-symbol position notional sampled at bar closes (grown in place)."""

    def __init__(self, symbols: Sequence[str], capacity: int = 1024) -> None:
        self.symbols = list(symbols)
        self.n = 0
        self.t = np.empty(capacity, dtype=np.int64)
        self.equity = np.empty(capacity)
        self.notional = np.zeros((capacity, len(self.symbols)))

    def add(self, t: int, equity: float, portfolio: Any) -> None:
        n = self.n
        if n == len(self.t):
            self.t = np.resize(self.t, 2 * n)
            self.equity = np.resize(self.equity, 2 * n)
            self.notional = np.resize(self.notional, (2 * n, len(self.symbols)))
        self.t[n] = t
        self.equity[n] = equity
        row = self.notional[n]
        for j, s in enumerate(self.symbols):
            row[j] = portfolio.notional(s)
        self.n = n + 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.t[: self.n], self.equity[: self.n], self.notional[: self.n]


class MarketHandler:
    """Applies market events to a :class:`~hlquant.kernel.components.Kernel` (see module doc).

    - ``features``: a market sink that updates features on every event (live:
      ``FeatureProcessor``), or None when features come from elsewhere.
    - ``before_decide(symbol)``: called before a symbol's agents decide (backtest:
      ``ColumnarFeatures.before_decide`` writes that symbol's precomputed values).
    - ``faults``: ``[(ts_ms, agent)]`` agents to kill at those times (drills).
    """

    def __init__(self, k: Kernel, *, features: Any = None,
                 before_decide: Callable[[str], None] | None = None,
                 faults: Sequence[tuple[int, str]] = (), heartbeat_check_ms: int | None = None) -> None:
        self.k = k
        self.clock = k.clock
        self.venue_feed = k.venue if k.venue is not None and hasattr(k.venue, "on_candle") else None
        self.portfolio = k.portfolio
        self.marks = k.marks
        self.risk = k.risk
        self.router = k.router
        self.runner = k.runner
        self.features = features
        self.before_decide = before_decide
        trig = self.runner.triggers() if self.runner is not None else set()
        self._trig = {kind: frozenset(s for kd, s in trig if kd == kind) for kind in TRIGGER_KINDS}
        self._trig_candle = self._trig["candle"]
        self._trig_trade = self._trig["trade"]
        self._trig_l2 = self._trig["l2"]
        self._trig_funding = self._trig["funding"]
        self.curve = EquityCurve(k.symbols)
        self.t = -(2**62)  # event time of the events being applied
        self._bar = False  # a candle closed at time t: sample equity when time moves on
        self._priced = False  # a price moved at time t: check drawdown when time moves on
        agents = self.runner.agents if self.runner is not None else ()
        self.hb_check_ms = int(heartbeat_check_ms or min((a.config.heartbeat_ms for a in agents), default=1000))
        self._next_hb_check = 0
        self._faults = sorted((int(t), str(a)) for t, a in faults)
        self._fault_i = 0
        self.events = 0
        self.started = False

    # ------------------------------------------------------------------ time
    def start(self, t: int) -> None:
        """Agents' setup and first heartbeat, at the first event (or tick)."""
        if self.started:
            return
        self.started = True
        self.t = t
        if self.runner is not None:
            self.runner.start(t)
        self._next_hb_check = t + self.hb_check_ms

    def advance(self, t: int) -> None:
        """Event time moved to ``t``: close the previous instant, then housekeeping at ``t``."""
        if not self.started:
            self.start(t)
        if self._bar:
            eq = self.portfolio.equity()
            self.curve.add(self.t, eq, self.portfolio)
            self.risk.on_equity(eq)
            self._bar = self._priced = False
        elif self._priced:
            if self.risk is not None:
                self.risk.on_equity(self.portfolio.equity())
            self._priced = False
        self.t = t
        while self._fault_i < len(self._faults) and self._faults[self._fault_i][0] <= t:
            self.runner.kill(self._faults[self._fault_i][1])
            self._fault_i += 1
        runner = self.runner
        if runner is not None and t >= runner.next_beat_due:
            runner.heartbeat(t)
        if self.risk is not None and t >= self._next_hb_check:
            self.risk.check_heartbeats(t)
            self._next_hb_check = t + self.hb_check_ms
        if self.venue_feed is not None:
            self.venue_feed.advance(t)
        router = self.router
        if router is not None:
            if router.dead_mans_switch_ms:
                router.keep_switch_armed(t)
            if router.has_work:
                router.flush()

    def tick(self) -> None:
        """Housekeeping without market data (live: the feed is quiet)."""
        t = self.clock.now_ms()
        if t > self.t:
            self.advance(t)
        elif self.router is not None and self.router.has_work:
            self.router.flush()

    def finish(self, flush: bool = True) -> None:
        """Close the last instant (its equity sample); send what is queued unless told not to."""
        if self._bar:
            eq = self.portfolio.equity()
            self.curve.add(self.t, eq, self.portfolio)
            self.risk.on_equity(eq)
            self._bar = self._priced = False
        if flush and self.router is not None and self.router.has_work:
            self.router.flush()

    # ------------------------------------------------------------------ events (objects)
    def on_event(self, ev: Event) -> bool:
        """One event object (live): advances the clock, then the scalar path below."""
        t = self.clock.observe(ev.ts_exch)
        if t > self.t:
            self.advance(t)
        if type(ev) is FeaturesReady:
            self.on_features_ready(ev)
            return True
        return dispatch_market(ev, self)

    def on_features_ready(self, ev: FeaturesReady) -> None:
        """Features computed elsewhere (a stream processor) are in the store: set the
        price the events carried and fire the agents triggered by that stream."""
        self.events += 1
        sym = ev.symbol
        if ev.price == ev.price:
            self.marks[sym] = ev.price
        if sym in self._trig.get(ev.stream, ()):
            self._fire(ev.stream, sym)

    # ------------------------------------------------------------------ events (scalars)
    def _price(self, sym: str, px: float, ts: int) -> None:
        self.marks[sym] = px
        if self.risk is not None:
            self.risk.on_price(sym, px, ts)
        self._priced = True

    def _fire(self, kind: str, sym: str) -> None:
        if self.before_decide is not None:
            self.before_decide(sym)
        self.runner.on_trigger(kind, sym, self.t)

    def _done(self) -> None:
        router = self.router
        if router is not None and router.has_work:
            router.flush()

    def on_candle(self, sym: str, ts: int, o: float, h: float, l: float, c: float, v: float) -> None:  # noqa: E741
        self.events += 1
        if self.venue_feed is not None:
            self.venue_feed.on_candle(sym, ts, o, h, l, c, v)
        self._price(sym, c, ts)
        if self.portfolio is not None:
            self._bar = True
        if self.features is not None:
            self.features.on_candle(sym, ts, o, h, l, c, v)
        if sym in self._trig_candle:
            self._fire("candle", sym)
        self._done()

    def on_trade(self, sym: str, ts: int, side: int, px: float, sz: float) -> None:
        self.events += 1
        if self.venue_feed is not None:
            self.venue_feed.on_trade(sym, ts, side, px, sz)
        self._price(sym, px, ts)
        if self.features is not None:
            self.features.on_trade(sym, ts, side, px, sz)
        if sym in self._trig_trade:
            self._fire("trade", sym)
        self._done()

    def on_book(self, sym: str, ts: int, bid_px: np.ndarray, bid_sz: np.ndarray,
                ask_px: np.ndarray, ask_sz: np.ndarray) -> None:
        self.events += 1
        if self.venue_feed is not None:
            self.venue_feed.on_book(sym, ts, bid_px, bid_sz, ask_px, ask_sz)
        if len(bid_px) and len(ask_px):
            self._price(sym, (float(bid_px[0]) + float(ask_px[0])) / 2, ts)
        if self.features is not None:
            self.features.on_book(sym, ts, bid_px, bid_sz, ask_px, ask_sz)
        if sym in self._trig_l2:
            self._fire("l2", sym)
        self._done()

    def on_bbo(self, sym: str, ts: int, bid_px: float, bid_sz: float, ask_px: float, ask_sz: float) -> None:
        self.events += 1
        if self.venue_feed is not None:
            self.venue_feed.on_bbo(sym, ts, bid_px, bid_sz, ask_px, ask_sz)
        if bid_px == bid_px and ask_px == ask_px:
            self._price(sym, (bid_px + ask_px) / 2, ts)
        if self.features is not None:
            self.features.on_bbo(sym, ts, bid_px, bid_sz, ask_px, ask_sz)
        self._done()

    def on_funding(self, sym: str, ts: int, rate: float, oracle_px: float, premium: float = 0.0) -> None:
        self.events += 1
        if self.venue_feed is not None:
            self.venue_feed.on_funding(sym, ts, rate, oracle_px)
        if self.features is not None:
            self.features.on_funding(sym, ts, rate, oracle_px, premium)
        if sym in self._trig_funding:
            self._fire("funding", sym)
        self._done()

    def on_mark(self, sym: str, ts: int, mark_px: float) -> None:
        self.events += 1
        if self.venue_feed is not None:
            self.venue_feed.on_mark(sym, ts, mark_px)
        self.marks[sym] = mark_px
        self._priced = True
        if self.features is not None:
            self.features.on_mark(sym, ts, mark_px)
        self._done()
