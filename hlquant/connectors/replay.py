"""Replay connector: historical ``MarketData`` as a stream of core events.

The backtest (``mode=sim``) and notebooks consume history through the same
Connector interface as live feeds: ``connect()`` computes the merged replay
order once (``MarketData.merged``: ts_exch, then MarketKind priority, then
symbol), ``normalize((kind, row))`` turns one columnar row into its event
dataclass, ``emit`` (from the base class) publishes on the bus. Hot loops
that do not need objects use ``stream()`` and index the arrays directly.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from hlquant.bus.base import EventBus
from hlquant.connectors.base import Connector
from hlquant.core.events import (
    BBO,
    BookSnapshot,
    Candle,
    Event,
    FundingRate,
    MarketKind,
    MarkPrice,
    Side,
    Trade,
)
from hlquant.data.market import MarketData, interval_label

if TYPE_CHECKING:
    from hlquant.data.series import SignalSeries


class ReplayConnector(Connector):
    """Replays ``data`` in timestamp order; deterministic and restartable
    (``connect()`` again rewinds). Counters: ``messages`` = rows normalized,
    ``events`` = events yielded or emitted."""

    name = "replay"

    def __init__(self, data: MarketData, bus: EventBus | None = None) -> None:
        super().__init__(bus)
        self.data = data
        self.interval = interval_label(data.interval_ms)
        self._order: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        arrays = data.arrays()
        self._arrays = arrays
        self._builders: dict[int, Callable[[int], Event]] = {
            int(MarketKind.CANDLE): self._candle,
            int(MarketKind.TRADE): self._trade,
            int(MarketKind.L2): self._book,
            int(MarketKind.BBO): self._bbo,
            int(MarketKind.FUNDING): self._funding,
            int(MarketKind.MARK): self._mark,
        }

    # ------------------------------------------------------------------ Connector API
    def connect(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Compute (and cache) the merged order ``(ts, kind, row)``."""
        if self._order is None:
            self._order = self.data.merged()
        return self._order

    def normalize(self, raw: tuple[int, int]) -> list[Event]:
        """``(kind, row)`` -> ``[event]`` for that row of that stream."""
        kind, row = raw
        self.counters["messages"] += 1
        try:
            build = self._builders[int(kind)]
        except KeyError:
            self.counters["bad_messages"] += 1
            raise ValueError(f"replay: unknown market kind {kind!r}") from None
        return [build(int(row))]

    # ------------------------------------------------------------------ iteration
    def _events(self) -> Iterator[Event]:
        _, kind, row = self.connect()
        builders = self._builders
        counters = self.counters
        for k, r in zip(kind.tolist(), row.tolist(), strict=True):
            counters["messages"] += 1
            yield builders[k](r)

    def __iter__(self) -> Iterator[Event]:
        """All events in replay order."""
        for ev in self._events():
            self.counters["events"] += 1
            yield ev

    def __len__(self) -> int:
        return len(self.data)

    def run(self, bus: EventBus | None = None) -> int:
        """Emit every event on ``bus`` (or the connector's bus); returns the count."""
        if bus is not None:
            self.bus = bus
        return self.emit(self._events())

    def stream(self) -> Iterator[tuple[int, int, int]]:
        """``(ts, kind, row)`` tuples of Python ints, for loops that read the arrays."""
        ts, kind, row = self.connect()
        return zip(ts.tolist(), kind.tolist(), row.tolist(), strict=True)

    # ------------------------------------------------------------------ builders
    def _sym(self, i: int) -> str:
        return self.data.symbols[i]

    def _candle(self, row: int) -> Candle:
        te, tr, s, o, h, lo, c, v, n = self._arrays[MarketKind.CANDLE][row].item()
        return Candle(
            te, tr, self._sym(s), self.interval, o, h, lo, c, v, n, te - self.data.interval_ms
        )

    def _trade(self, row: int) -> Trade:
        te, tr, s, side, px, sz, tid = self._arrays[MarketKind.TRADE][row].item()
        return Trade(te, tr, self._sym(s), Side(side), px, sz, tid)

    def _book(self, row: int) -> BookSnapshot:
        r: Any = self._arrays[MarketKind.L2][row]
        # NaN price = absent level (padding); ``p == p`` is the cheap NaN test
        bp, bs, ap, az = (r[k].tolist() for k in ("bid_px", "bid_sz", "ask_px", "ask_sz"))
        bids = [(p, q) for p, q in zip(bp, bs, strict=True) if p == p]
        asks = [(p, q) for p, q in zip(ap, az, strict=True) if p == p]
        return BookSnapshot(
            int(r["ts_exch"]), int(r["ts_recv"]), self._sym(int(r["sym"])), bids, asks
        )

    def _bbo(self, row: int) -> BBO:
        te, tr, s, bp, bs, ap, az = self._arrays[MarketKind.BBO][row].item()
        return BBO(te, tr, self._sym(s), bp, bs, ap, az)

    def _funding(self, row: int) -> FundingRate:
        te, tr, s, rate, prem, oracle = self._arrays[MarketKind.FUNDING][row].item()
        return FundingRate(te, tr, self._sym(s), rate, prem, oracle)

    def _mark(self, row: int) -> MarkPrice:
        te, tr, s, mark, oracle = self._arrays[MarketKind.MARK][row].item()
        return MarkPrice(te, tr, self._sym(s), mark, oracle)


def with_signals(events: Iterable[Event], series: SignalSeries, t0: int, t_end: int) -> Iterator[Event]:
    """Market events (in replay order) with a series' ``Signal`` events merged in at their
    receive time, as the backtest merges them: at an equal time a signal comes first, rows
    received before ``t0`` come at ``t0`` (in receive order), rows after ``t_end`` are
    dropped. Event-at-a-time replays (pre-flight, parity) see what a backtest sees."""
    sig = ((max(ev.ts_recv, t0), 0, i, ev) for i, ev in enumerate(series.events()) if ev.ts_recv <= t_end)
    mkt = ((ev.ts_exch, 1, i, ev) for i, ev in enumerate(events))
    for _t, _p, _i, ev in heapq.merge(sig, mkt, key=lambda x: (x[0], x[1], x[2])):
        yield ev
