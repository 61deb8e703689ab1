"""Candles built from trades (and from mid prices where no trade printed).

One definition of an OHLCV bar from trades, used twice: vectorized over a
whole archive (``trade_candles``) and incrementally by the live recorder for
the trades it receives (``CandleBuilder``); a test checks they agree bar for
bar. A bar covers ``[open, open + interval)`` and is stamped with its *close*
time (``ts_exch = open + interval``), like every candle in hlquant, so it is
never seen before it is complete. Trades are the taker prints, one per
trade (the archive readers deduplicate before calling this).

``mid_candles`` makes bars from price samples (Hyperliquid's minute
``mid_px`` in asset_ctxs) for minutes without trades: a bar ``(open, close]``
uses the samples stamped in ``[open, close]``; volume and ``n`` are 0, which
is how a mid bar is told apart from a trade bar (``merge_candles``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hlquant.core.events import MARKET_DTYPES, Candle, MarketKind

CANDLE_DTYPE = MARKET_DTYPES[MarketKind.CANDLE]


def _groups(sym: np.ndarray, bucket: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index and length of each run of equal (sym, bucket) in sorted input."""
    new = np.ones(len(sym), dtype=bool)
    new[1:] = (np.diff(sym) != 0) | (np.diff(bucket) != 0)
    starts = np.flatnonzero(new)
    return starts, np.diff(np.append(starts, len(sym)))


def trade_candles(ts: np.ndarray, sym: np.ndarray, px: np.ndarray, sz: np.ndarray,
                  interval_ms: int) -> np.ndarray:
    """OHLCV bars from trades (ms times; ties keep input order). Only bars with trades."""
    ts = np.asarray(ts, dtype=np.int64)
    if not len(ts):
        return np.zeros(0, CANDLE_DTYPE)
    sym = np.asarray(sym, dtype=np.int64)
    px, sz = np.asarray(px, dtype=np.float64), np.asarray(sz, dtype=np.float64)
    bucket = ts // interval_ms
    order = np.lexsort((np.arange(len(ts)), ts, bucket, sym))  # stable within a bucket
    s, b, p, q = sym[order], bucket[order], px[order], sz[order]
    starts, counts = _groups(s, b)
    ends = starts + counts - 1
    out = np.zeros(len(starts), CANDLE_DTYPE)
    out["ts_exch"] = out["ts_recv"] = (b[starts] + 1) * interval_ms
    out["sym"] = s[starts]
    out["open"], out["close"] = p[starts], p[ends]
    out["high"] = np.maximum.reduceat(p, starts)
    out["low"] = np.minimum.reduceat(p, starts)
    out["volume"] = np.add.reduceat(q, starts)
    out["n"] = counts
    return out[np.lexsort((out["sym"], out["ts_exch"]))]


def mid_candles(ts: np.ndarray, sym: np.ndarray, mid: np.ndarray, interval_ms: int) -> np.ndarray:
    """Bars from price samples: bar ``(t - interval, t]`` closing at ``t`` uses the samples
    stamped in ``[t - interval, t]`` (the one at the open belongs to both neighbours) and
    exists only with a sample stamped exactly at ``t`` and at least one before it. NaN and non-positive samples are
    ignored; volume and n are 0."""
    ts = np.asarray(ts, dtype=np.int64)
    mid = np.asarray(mid, dtype=np.float64)
    ok = ~np.isnan(mid) & (mid > 0)
    ts, sym, mid = ts[ok], np.asarray(sym, dtype=np.int64)[ok], mid[ok]
    if not len(ts):
        return np.zeros(0, CANDLE_DTYPE)
    # each sample belongs to the bar it falls in; a sample exactly on a bar open also
    # closes the previous bar (it is that bar's last price)
    on_edge = ts % interval_ms == 0
    t2 = np.concatenate([ts, ts[on_edge] - 1])
    s2 = np.concatenate([sym, sym[on_edge]])
    m2 = np.concatenate([mid, mid[on_edge]])
    ts_sort = np.concatenate([ts, ts[on_edge]])  # order by the sample's own time
    closes = np.concatenate([np.zeros(len(ts), bool), np.ones(int(on_edge.sum()), bool)])
    bucket = t2 // interval_ms
    order = np.lexsort((ts_sort, bucket, s2))
    s, b, p = s2[order], bucket[order], m2[order]
    starts, counts = _groups(s, b)
    ends = starts + counts - 1
    # only bars with a sample at their close: the price at the close is known, not assumed
    full = closes[order][ends] & (counts >= 2)
    high, low = np.maximum.reduceat(p, starts)[full], np.minimum.reduceat(p, starts)[full]
    starts, ends = starts[full], ends[full]
    out = np.zeros(len(starts), CANDLE_DTYPE)
    out["ts_exch"] = out["ts_recv"] = (b[starts] + 1) * interval_ms
    out["sym"] = s[starts]
    out["open"], out["close"] = p[starts], p[ends]
    out["high"], out["low"] = high, low
    return out[np.lexsort((out["sym"], out["ts_exch"]))]


def merge_candles(preferred: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """``preferred`` bars plus the ``fallback`` bars whose (ts_exch, sym) it lacks."""
    if not len(fallback):
        return preferred
    key = lambda a: a["ts_exch"].astype(np.int64) * 65536 + a["sym"].astype(np.int64)  # noqa: E731
    keep = ~np.isin(key(fallback), key(preferred))
    out = np.concatenate([preferred, fallback[keep]])
    return out[np.lexsort((out["sym"], out["ts_exch"]))]


@dataclass
class _Bar:
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    n: int


class CandleBuilder:
    """Incremental ``trade_candles`` for a live stream of trades.

    ``add`` returns the bars a trade closes (a trade in a later bar closes the
    open one); ``advance(ts)`` closes bars that ended at or before ``ts`` (time
    taken from any other event, so a quiet symbol's bar still closes); ``reset``
    drops open bars (after a feed gap they are incomplete). A trade older than
    its symbol's open bar, or of a bar already closed, is in no bar: it is
    counted in ``late`` (the bar it belonged to was closed without it), never
    merged into a later bar nor opening a second bar of the same minute.
    """

    def __init__(self, interval_ms: int, interval: str = "") -> None:
        self.interval_ms = int(interval_ms)
        self.interval = interval
        self._open: dict[str, _Bar] = {}
        self._closed: dict[str, int] = {}  # symbol -> close time of its last closed bar
        self.late = 0

    def add(self, symbol: str, ts: int, px: float, sz: float) -> list[Candle]:
        start = ts // self.interval_ms * self.interval_ms
        bar = self._open.get(symbol)
        out: list[Candle] = []
        if start < self._closed.get(symbol, start) or (bar is not None and start < bar.start):
            self.late += 1
            return out
        if bar is not None and start > bar.start:
            out.append(self._close(symbol, bar))
            bar = None
        if bar is None:
            self._open[symbol] = _Bar(start, px, px, px, px, sz, 1)
        else:  # same bar
            bar.high, bar.low = max(bar.high, px), min(bar.low, px)
            bar.close = px
            bar.volume += sz
            bar.n += 1
        return out

    def advance(self, ts: int) -> list[Candle]:
        done = [s for s, b in self._open.items() if b.start + self.interval_ms <= ts]
        return [self._close(s, self._open[s]) for s in done]

    def flush(self) -> list[Candle]:
        """Close every open bar (end of data: the last bars are complete only if the
        caller knows no more trades of their interval will come)."""
        return [self._close(s, b) for s, b in list(self._open.items())]

    def reset(self, symbols: Sequence[str] | None = None) -> int:
        drop = list(self._open) if symbols is None else [s for s in symbols if s in self._open]
        for s in drop:
            del self._open[s]
        return len(drop)

    def _close(self, symbol: str, b: _Bar) -> Candle:
        del self._open[symbol]
        t = b.start + self.interval_ms
        self._closed[symbol] = t
        return Candle(t, t, symbol, self.interval, b.open, b.high, b.low, b.close, b.volume, b.n, b.start)


__all__ = ["trade_candles", "mid_candles", "merge_candles", "CandleBuilder", "CANDLE_DTYPE"]
