"""The market-event sink contract and the one conversion from event objects to it.

A market event reaches everything that reacts to it (the SimVenue, the
kernel's handler, the feature processors) as a call with plain scalars,
``on_candle(symbol, ts, o, h, l, c, v)`` and so on. The backtest makes those
calls straight from its columns; live code receives event objects and turns
them into the same calls through :func:`dispatch_market`, so there is exactly
one mapping from an event type to a sink method.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from hlquant.core.events import BBO, BookSnapshot, Candle, Event, FundingRate, MarkPrice, Trade


class MarketSink(Protocol):
    """Receives market data as scalars (order books as arrays, best level first)."""

    def on_candle(self, symbol: str, ts: int, o: float, h: float, l: float, c: float, v: float) -> None: ...  # noqa: E741

    def on_trade(self, symbol: str, ts: int, side: int, px: float, sz: float) -> None: ...

    def on_book(self, symbol: str, ts: int, bid_px: np.ndarray, bid_sz: np.ndarray,
                ask_px: np.ndarray, ask_sz: np.ndarray) -> None: ...

    def on_bbo(self, symbol: str, ts: int, bid_px: float, bid_sz: float, ask_px: float,
               ask_sz: float) -> None: ...

    def on_funding(self, symbol: str, ts: int, rate: float, oracle_px: float, premium: float = 0.0) -> None: ...

    def on_mark(self, symbol: str, ts: int, mark_px: float) -> None: ...


def book_arrays(ev: BookSnapshot) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(bid_px, bid_sz, ask_px, ask_sz) of a snapshot, best level first."""
    bids = np.asarray(ev.bids, float).reshape(-1, 2)
    asks = np.asarray(ev.asks, float).reshape(-1, 2)
    return bids[:, 0], bids[:, 1], asks[:, 0], asks[:, 1]


def dispatch_market(ev: Event, sink: MarketSink) -> bool:
    """Deliver one market event object to ``sink``; False if it is not market data."""
    t = type(ev)
    if t is Candle:
        sink.on_candle(ev.symbol, ev.ts_exch, ev.open, ev.high, ev.low, ev.close, ev.volume)
    elif t is Trade:
        sink.on_trade(ev.symbol, ev.ts_exch, int(ev.side), ev.px, ev.sz)
    elif t is BookSnapshot:
        sink.on_book(ev.symbol, ev.ts_exch, *book_arrays(ev))
    elif t is BBO:
        sink.on_bbo(ev.symbol, ev.ts_exch, ev.bid_px, ev.bid_sz, ev.ask_px, ev.ask_sz)
    elif t is FundingRate:
        sink.on_funding(ev.symbol, ev.ts_exch, ev.rate, ev.oracle_px, ev.premium)
    elif t is MarkPrice:
        sink.on_mark(ev.symbol, ev.ts_exch, ev.mark_px)
    else:
        return False
    return True
