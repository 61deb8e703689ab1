"""Stream processors: features over columnar history, or event by event.

``compute_columnar`` (backtests) runs each kernel per symbol over that
symbol's rows of the input stream; ``FeatureProcessor`` (live and paper)
steps the same kernels on each event and writes the FeatureStore. Both give
the same numbers (tests/features/test_parity.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hlquant.core.errors import StaleFeatureError
from hlquant.core.events import Event, MarketKind
from hlquant.core.market import dispatch_market
from hlquant.features.kernels import Feature, FeatureSpec, parse_specs
from hlquant.features.store import FeatureStore, InMemoryFeatureStore, StalenessRules

_STREAM_KIND = {
    "candle": MarketKind.CANDLE, "trade": MarketKind.TRADE, "l2": MarketKind.L2,
    "bbo": MarketKind.BBO, "funding": MarketKind.FUNDING, "mark": MarketKind.MARK,
}
_SCALAR_FIELD = {
    "candle.close": "close", "candle.open": "open", "candle.high": "high", "candle.low": "low",
    "candle.volume": "volume", "trade.px": "px", "trade.sz": "sz", "funding.rate": "rate",
    "funding.premium": "premium", "mark.px": "mark_px",
}


@dataclass(frozen=True)
class FeatureColumn:
    """Feature values aligned with the rows of the source stream's array."""

    kind: MarketKind
    values: np.ndarray


def _inputs(spec: FeatureSpec, a: np.ndarray) -> tuple[np.ndarray, ...]:
    if spec.input in _SCALAR_FIELD:
        return (a[_SCALAR_FIELD[spec.input]],)
    if spec.input == "bbo.mid":
        return ((a["bid_px"] + a["ask_px"]) / 2.0,)
    if spec.input == "trade":
        return a["px"], a["sz"]
    if spec.input == "candle":
        return a["close"], a["volume"]
    if spec.input == "l2":
        return a["bid_sz"], a["ask_sz"]
    if spec.input == "bbo":
        return a["bid_sz"][:, None], a["ask_sz"][:, None]
    raise ValueError(f"unsupported input {spec.input!r}")


def compute_columnar(
    specs: Sequence[FeatureSpec | Mapping[str, Any]],
    arrays: Mapping[MarketKind, np.ndarray],
    n_symbols: int,
) -> dict[str, FeatureColumn]:
    """All features over whole streams; state is per symbol."""
    specs = parse_specs(specs)
    out: dict[str, FeatureColumn] = {}
    sym_rows: dict[MarketKind, list[np.ndarray]] = {}
    for spec in specs:
        kind = _STREAM_KIND[spec.stream]
        a = arrays.get(kind)
        if a is None or not len(a):
            out[spec.name] = FeatureColumn(kind, np.full(0 if a is None else len(a), np.nan))
            continue
        if kind not in sym_rows:
            order = np.argsort(a["sym"], kind="stable")
            bounds = np.searchsorted(a["sym"][order], np.arange(n_symbols + 1))
            sym_rows[kind] = [order[bounds[s] : bounds[s + 1]] for s in range(n_symbols)]
        xs = _inputs(spec, a)
        vals = np.full(len(a), np.nan)
        f = Feature(spec)
        for rows in sym_rows[kind]:
            if len(rows):
                vals[rows] = f.run(*(x[rows] for x in xs))
        out[spec.name] = FeatureColumn(kind, vals)
    return out


class FeatureProcessor:
    """Incremental features per symbol, written to a FeatureStore on each event.

    A :class:`~hlquant.core.market.MarketSink`: it receives market data as the
    same scalar calls as the venue and the kernel's handler (``on_event`` takes
    event objects through the one converter, ``dispatch_market``)."""

    def __init__(self, specs: Sequence[FeatureSpec | Mapping[str, Any]], store: FeatureStore,
                 symbols: Sequence[str]) -> None:
        self.specs = parse_specs(specs)
        self.store = store
        self.by_stream: dict[str, list[FeatureSpec]] = {}
        for s in self.specs:
            self.by_stream.setdefault(s.stream, []).append(s)
        self.features: dict[tuple[str, str], Feature] = {
            (sym, s.name): Feature(s) for sym in symbols for s in self.specs
        }
        self.updates = 0

    def _update(self, stream: str, sym: str, ts: int, inputs: Mapping[str, tuple]) -> int:
        specs = self.by_stream.get(stream)
        if not specs:
            return 0
        items = []
        for spec in specs:
            f = self.features.get((sym, spec.name))
            if f is None:
                f = self.features[(sym, spec.name)] = Feature(spec)
            items.append((spec.name, f.update(*inputs[spec.input])))
        self.store.put_many(sym, items, ts)
        self.updates += len(items)
        return len(items)

    def on_event(self, ev: Event) -> int:
        n0 = self.updates
        dispatch_market(ev, self)
        return self.updates - n0

    def on_candle(self, symbol: str, ts: int, o: float, h: float, l: float, c: float, v: float) -> None:  # noqa: E741
        if "candle" in self.by_stream:
            self._update("candle", symbol, ts, {
                "candle.close": (c,), "candle.open": (o,), "candle.high": (h,), "candle.low": (l,),
                "candle.volume": (v,), "candle": (c, v)})

    def on_trade(self, symbol: str, ts: int, side: int, px: float, sz: float) -> None:
        if "trade" in self.by_stream:
            self._update("trade", symbol, ts, {"trade.px": (px,), "trade.sz": (sz,), "trade": (px, sz)})

    def on_book(self, symbol: str, ts: int, bid_px: np.ndarray, bid_sz: np.ndarray,
                ask_px: np.ndarray, ask_sz: np.ndarray) -> None:
        if "l2" in self.by_stream:
            self._update("l2", symbol, ts, {"l2": (np.asarray(bid_sz, float), np.asarray(ask_sz, float))})

    def on_bbo(self, symbol: str, ts: int, bid_px: float, bid_sz: float, ask_px: float,
               ask_sz: float) -> None:
        if "bbo" in self.by_stream:
            self._update("bbo", symbol, ts, {"bbo.mid": ((bid_px + ask_px) / 2.0,),
                                             "bbo": (np.array([bid_sz]), np.array([ask_sz]))})

    def on_funding(self, symbol: str, ts: int, rate: float, oracle_px: float, premium: float = 0.0) -> None:
        if "funding" in self.by_stream:
            self._update("funding", symbol, ts, {"funding.rate": (rate,), "funding.premium": (premium,)})

    def on_mark(self, symbol: str, ts: int, mark_px: float) -> None:
        if "mark" in self.by_stream:
            self._update("mark", symbol, ts, {"mark.px": (mark_px,)})

    # --- persistence (a stream processor that restarts resumes its kernels' state) ---
    def state_of(self, symbol: str) -> dict[str, bytes]:
        """Every feature's kernel state of ``symbol``, as bytes."""
        return {name: f.state.tobytes() for (sym, name), f in self.features.items() if sym == symbol}

    def load_state(self, symbol: str, states: Mapping[str, bytes]) -> int:
        """Restore kernel states written by ``state_of``; returns how many were restored."""
        n = 0
        for (sym, name), f in self.features.items():
            raw = states.get(name)
            if sym == symbol and raw is not None and len(raw) == f.state.nbytes:
                f.state = np.frombuffer(raw, dtype=f.state.dtype).reshape(f.state.shape).copy()
                n += 1
        return n


_NONE: dict = {}


class ColumnarFeatures:
    """The backtest's feature store: every feature precomputed over its whole stream
    (``compute_columnar``) and read from its column on demand, at the row the loop
    last delivered for that symbol, with that row's timestamp checked against the
    staleness rule on every read, exactly as the live store checks what the
    stream processors wrote. Nothing is copied per decision.

    The loop that walks the columns records, per stream kind and symbol, the last
    row it delivered (``cursor(kind)[s] = row``); ``bind`` attaches the columns
    (the kernel is built before they are computed). Values written with ``put``
    (nothing in a backtest does) are kept and read like the in-memory store's.
    Implements :class:`~hlquant.features.store.FeatureStore`.
    """

    def __init__(self, symbols: Sequence[str], rules: StalenessRules | Mapping[str, int] | None = None) -> None:
        self.rules = rules if isinstance(rules, StalenessRules) else StalenessRules(rules)
        self.symbols = list(symbols)
        self._extra = InMemoryFeatureStore(self.rules)
        self.stale_reads = self._extra.stale_reads
        # symbol -> feature name -> (values, source timestamps, row cursor, symbol index, max age)
        self._src: dict[str, dict[str, tuple[list, list, list[int], int, int]]] = {s: {} for s in self.symbols}
        self._cursor: dict[int, list[int]] = {}

    def bind(self, cols: Mapping[str, FeatureColumn], arrays: Mapping[MarketKind, np.ndarray]) -> None:
        """Read ``cols`` (aligned with the rows of ``arrays``) from now on."""
        ts: dict[int, list] = {}
        for fname, col in cols.items():
            k = int(col.kind)
            a = arrays.get(col.kind)
            if k not in ts:
                ts[k] = a["ts_exch"].tolist() if a is not None and len(a) else []
                self._cursor[k] = [-1] * len(self.symbols)
            vals = col.values.tolist()
            limit = self.rules.max_age(fname)
            for s, sym in enumerate(self.symbols):
                self._src[sym][fname] = (vals, ts[k], self._cursor[k], s, limit)

    def cursor(self, kind: MarketKind) -> list[int] | None:
        """The row pointers of one stream kind (None when no feature reads it)."""
        return self._cursor.get(int(kind))

    @property
    def writes(self) -> int:
        """Values written with ``put`` (the columns are read where they are)."""
        return self._extra.writes

    def get(self, symbol: str, name: str, now: int) -> float:
        src = self._src.get(symbol, _NONE).get(name)
        if src is None:
            return self._extra.get(symbol, name, now)
        vals, ts, cur, s, limit = src
        r = cur[s]
        if r < 0:
            self.stale_reads[name] += 1
            raise StaleFeatureError(symbol, name, None, limit)
        age = now - ts[r]
        if age > limit:
            self.stale_reads[name] += 1
            raise StaleFeatureError(symbol, name, age, limit)
        return vals[r]

    def get_with_ts(self, symbol: str, name: str) -> tuple[float, int] | None:
        src = self._src.get(symbol, _NONE).get(name)
        if src is None:
            return self._extra.get_with_ts(symbol, name)
        vals, ts, cur, s, _ = src
        r = cur[s]
        return (vals[r], ts[r]) if r >= 0 else None

    def put(self, symbol: str, name: str, value: float, ts: int) -> None:
        self._extra.put(symbol, name, value, ts)

    def put_many(self, symbol: str, items: Iterable[tuple[str, float]], ts: int) -> None:
        self._extra.put_many(symbol, items, ts)
