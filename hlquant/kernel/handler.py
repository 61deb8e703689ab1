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

Equity is sampled at bar closes (a candle closed at that time, in both modes),
every bar or at most once per ``equity_every_ms`` of event time, and the
drawdown kill switch is checked every time event time advances after any
price moved. Time-driven checks (faults, heartbeats, heartbeat checks) run
only when the earliest of them is due.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hlquant.core.clock import SimClock
from hlquant.core.events import (
    BBO,
    GLOBAL_SERIES,
    BookSnapshot,
    Candle,
    Event,
    FeaturesReady,
    FundingRate,
    MarkPrice,
    Signal,
    Trade,
)
from hlquant.core.market import dispatch_market

if TYPE_CHECKING:
    from hlquant.kernel.components import Kernel

TRIGGER_KINDS = ("candle", "trade", "l2", "funding")
"""Market streams an agent can be triggered by (``AgentConfig.trigger``)."""
_STREAM_OF = {Candle: "candle", Trade: "trade", BookSnapshot: "l2", BBO: "bbo", FundingRate: "funding",
              MarkPrice: "mark"}


class EquityCurve:
    """Equity and per-symbol position notional sampled at bar closes, at most one
    sample per ``every_ms`` of event time (0: every bar close). A sample is taken at
    the first bar close on or after each multiple of ``every_ms``; the last instant
    of a run is always sampled. Grown in place (typed arrays, no per-sample objects)."""

    def __init__(self, symbols: Sequence[str], every_ms: int = 0) -> None:
        self.symbols = list(symbols)
        self.every_ms = max(0, int(every_ms))
        self.next_due = -(2**62)
        self.t = array("q")
        self.equity = array("d")
        self.notional = [array("d") for _ in self.symbols]

    @property
    def n(self) -> int:
        return len(self.t)

    def add(self, t: int, equity: float, portfolio: Any) -> None:
        self.t.append(t)
        self.equity.append(equity)
        pos, marks = portfolio.positions, portfolio.marks
        for s, col in zip(self.symbols, self.notional, strict=True):  # Portfolio.notional(s)
            p = pos.get(s)
            col.append(p.size * marks.get(s, p.entry_px) if p is not None and p.size else 0.0)
        if self.every_ms:
            self.next_due = (t // self.every_ms + 1) * self.every_ms

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(self.t)
        pos = np.empty((n, len(self.symbols)))
        for j, col in enumerate(self.notional):
            pos[:, j] = np.frombuffer(col, dtype=np.float64) if n else 0.0
        return (np.frombuffer(self.t, dtype=np.int64).copy() if n else np.empty(0, np.int64),
                np.frombuffer(self.equity, dtype=np.float64).copy() if n else np.empty(0), pos)


class MarketHandler:
    """Applies market events to a :class:`~hlquant.kernel.components.Kernel` (see module doc).

    - ``features``: a market sink that updates features on every event (live:
      ``FeatureProcessor``), or None when features come from elsewhere (the
      backtest's store reads its precomputed columns on demand).
    - ``faults``: ``[(ts_ms, agent)]`` agents to kill at those times (drills).
    - ``equity_every_ms``: equity sampling resolution (default: the spec's; 0: every bar).
    """

    def __init__(self, k: Kernel, *, features: Any = None,
                 faults: Sequence[tuple[int, str]] = (), heartbeat_check_ms: int | None = None,
                 equity_every_ms: int | None = None) -> None:
        self.k = k
        self.clock = k.clock
        self.venue_feed = k.venue if k.venue is not None and hasattr(k.venue, "on_candle") else None
        self.portfolio = k.portfolio
        self.marks = k.marks
        self.risk = k.risk
        self.router = k.router
        self.runner = k.runner
        self.features = features
        trig = self.runner.triggers() if self.runner is not None else set()
        self._trig = {kind: frozenset(s for kd, s in trig if kd == kind) for kind in TRIGGER_KINDS}
        self._trig_candle = self._trig["candle"]
        self._trig_trade = self._trig["trade"]
        self._trig_l2 = self._trig["l2"]
        self._trig_funding = self._trig["funding"]
        every = getattr(k.spec, "equity_every_ms", 0) if equity_every_ms is None else equity_every_ms
        self.curve = EquityCurve(k.symbols, every)
        self.t = -(2**62)  # event time of the events being applied
        self._bar = False  # a candle closed at time t: sample equity when time moves on
        self._priced = False  # a price moved at time t: check drawdown when time moves on
        self._bars = self.portfolio is not None  # a candle is a bar close (equity is sampled)
        agents = self.runner.agents if self.runner is not None else ()
        self.hb_check_ms = int(heartbeat_check_ms or min((a.config.heartbeat_ms for a in agents), default=1000))
        self._next_hb_check = 0
        self._faults = sorted((int(t), str(a)) for t, a in faults)
        self._fault_i = 0
        self._next_due = -(2**62)  # earliest event time at which a fault, beat or check is due
        self.events = 0
        self.started = False
        self.signals = 0  # Signal events applied (data beyond the exchange)
        self.store = k.store
        # decide_batch agents: their triggers of one instant are decided together. In event
        # time (backtests, replays) an instant ends when time moves on or another kind of
        # event arrives; on the wall clock at each tick and when the driver says so
        # (flush_batches after a bus read).
        self.batching = bool(self.runner is not None and self.runner.batching)
        self._event_time = isinstance(self.clock, SimClock)

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
        self._schedule()

    def _schedule(self) -> None:
        """When the next time-driven check is due (faults, heartbeats, heartbeat checks)."""
        due = self._faults[self._fault_i][0] if self._fault_i < len(self._faults) else 2**62
        if self.runner is not None:
            due = min(due, self.runner.next_beat_due)
        if self.risk is not None:
            due = min(due, self._next_hb_check)
        self._next_due = due

    def _close_instant(self) -> None:
        """The instant ``self.t`` is over: sample equity at a bar close, check drawdown."""
        pf = self.portfolio
        if self._bar:
            eq = pf.equity()
            curve = self.curve
            if self.t >= curve.next_due:
                curve.add(self.t, eq, pf)
            self.risk.on_equity(eq)
        elif self._priced and self.risk is not None:
            self.risk.on_equity(pf.equity())
        self._bar = self._priced = False

    def advance(self, t: int) -> None:
        """Event time moved to ``t``: close the previous instant, then housekeeping at ``t``."""
        if not self.started:
            self.start(t)
        if self.batching and self._event_time and self.runner.pending:
            # the previous instant's batch, decided at its own time: the driver has already
            # moved the (simulated) clock to t, so risk and router would see the batch late
            clock = self.clock
            moved, clock.t = clock.t, self.t
            try:
                self.flush_batches()
            finally:
                clock.t = moved
        if self._bar or self._priced:
            self._close_instant()
        self.t = t
        if t >= self._next_due:
            while self._fault_i < len(self._faults) and self._faults[self._fault_i][0] <= t:
                self.runner.kill(self._faults[self._fault_i][1])
                self._fault_i += 1
            runner = self.runner
            if runner is not None and t >= runner.next_beat_due:
                runner.heartbeat(t)
            if self.risk is not None and t >= self._next_hb_check:
                self.risk.check_heartbeats(t)
                self._next_hb_check = t + self.hb_check_ms
            self._schedule()
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
        if self.batching and self.runner.pending:  # wall clock: a batch waits at most one tick
            self.flush_batches()

    def finish(self, flush: bool = True) -> None:
        """Close the last instant (always sampled); send what is queued unless told not to."""
        if flush and self.batching and self.runner.pending:
            self.flush_batches()
        if self._bar:
            self.curve.next_due = -(2**62)
            self._close_instant()
        if flush and self.router is not None and self.router.has_work:
            self.router.flush()

    # ------------------------------------------------------------------ events (objects)
    def on_event(self, ev: Event) -> bool:
        """One event object (live): advances the clock, then the scalar path below."""
        if type(ev) is Signal:  # visible from its receive time on
            t = self.clock.observe(ev.ts_recv)
            if t > self.t:
                self.advance(t)
            self.on_signal(ev.name, ev.symbol, ev.ts_exch, ev.value)
            return True
        t = self.clock.observe(ev.ts_exch)
        if t > self.t:
            self.advance(t)
        if self.batching and self._event_time and self.runner.pending:
            kind = ev.stream if type(ev) is FeaturesReady else _STREAM_OF.get(type(ev))
            if kind != self.runner.pending_kind:
                self.flush_batches()  # another kind of event: the instant's triggers are complete
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

    def on_signal(self, name: str, symbol: str | None, ts: int, value: float) -> None:
        """An external series' observation (``Signal``), applied at its receive time: into
        the feature store with the source's time ``ts``, where the staleness rules judge
        its age (``ctx.signal``). A market-wide series (no symbol) is stored under
        ``GLOBAL_SERIES``. Processes without agents (risk) keep no store and ignore it."""
        self.signals += 1
        if self.store is not None:
            self.store.put(symbol or GLOBAL_SERIES, name, value, ts)

    def flush_batches(self) -> int:
        """Decide the triggers waiting for ``decide_batch`` agents now (at the instant they
        fired); the router then sends what risk approved. Returns intents published."""
        if self.runner is None or not self.runner.pending:
            return 0
        n = self.runner.flush_batches(self.t)
        self._done()
        return n

    def grouped(self, fn: Callable[..., None], kind: str) -> Callable[..., None]:
        """``fn`` (an ``on_<kind>`` method) that first decides a pending batch of another
        trigger kind: a backtest walking its merged columns binds these when an agent
        batches, so one instant's candles (say) are decided in one call, before the marks
        of the same instant move prices."""
        runner = self.runner

        def call(sym: str, ts: int, *a: Any) -> None:
            if runner.pending and runner.pending_kind != kind:
                self.flush_batches()
            fn(sym, ts, *a)

        return call

    # ------------------------------------------------------------------ events (scalars)
    def _price(self, sym: str, px: float, ts: int) -> None:
        self.marks[sym] = px
        if self.risk is not None:
            self.risk.on_price(sym, px, ts)
        self._priced = True

    def _fire(self, kind: str, sym: str) -> None:
        self.runner.on_trigger(kind, sym, self.t)

    def _done(self) -> None:
        router = self.router
        if router is not None and router.has_work:
            router.flush()

    def on_candle(self, sym: str, ts: int, o: float, h: float, l: float, c: float, v: float) -> None:  # noqa: E741
        # the hottest path of a backtest: _price and _done written out
        self.events += 1
        if self.venue_feed is not None:
            self.venue_feed.on_candle(sym, ts, o, h, l, c, v)
        self.marks[sym] = c
        if self.risk is not None:
            self.risk.on_price(sym, c, ts)
        self._priced = True
        self._bar = self._bars
        if self.features is not None:
            self.features.on_candle(sym, ts, o, h, l, c, v)
        if sym in self._trig_candle:
            self.runner.on_trigger("candle", sym, self.t)
        router = self.router
        if router is not None and router.has_work:
            router.flush()

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
