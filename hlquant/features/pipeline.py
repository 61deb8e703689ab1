"""Stream processors: features over columnar history, or event by event.

``compute_columnar`` (backtests) runs each kernel per symbol over that
symbol's rows of the input stream; ``FeatureProcessor`` (live and paper)
steps the same kernels on each event and writes the FeatureStore. Both give
the same numbers (tests/features/test_parity.py), including:

- warm-up: a feature's value is NaN until it has seen ``warmup`` observations
  (``Feature.warmup``, derived from its span or window); the agent runner does
  not call ``decide`` before the features an agent declared are warm;
- higher timeframes (``timeframe``): candles of that length are built from the
  base candles and the feature steps only when one has closed;
- two-symbol kinds (``corr``, ``beta``): closes paired by bar time with the
  reference symbol's, a pair used once both closes are known;
- bar history (``Agent.history``): the last candles of a symbol as arrays
  (``bars``), for ``Context.bars``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from hlquant.core.errors import HlquantError, StaleFeatureError
from hlquant.core.events import Event, MarketKind
from hlquant.core.market import dispatch_market
from hlquant.features.kernels import TWO_SYMBOL_KINDS, Feature, FeatureSpec, parse_specs
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
BAR_FIELDS = ("open", "high", "low", "close", "volume")


class Bars(NamedTuple):
    """The last candles of a symbol, oldest first (``Context.bars``): one array per field.
    ``ts`` is each candle's close time; the last row is the latest closed candle."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


def history_depth(specs: Sequence[FeatureSpec]) -> int:
    """Candles to keep per symbol: the longest ``history`` feature declared (0: none)."""
    return max((int(s.params["length"]) for s in specs if s.kind == "history"), default=0)


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
    if spec.input == "candle.hlc":
        return a["high"], a["low"], a["close"]
    if spec.input == "l2":
        return a["bid_sz"], a["ask_sz"]
    if spec.input == "bbo":
        return a["bid_sz"][:, None], a["ask_sz"][:, None]
    raise ValueError(f"unsupported input {spec.input!r}")


def _counts(spec: FeatureSpec, x0: np.ndarray) -> np.ndarray:
    """Observations so far at each row, as ``Feature.update`` counts them (a NaN first
    input is not an observation; book inputs always are)."""
    if x0.ndim > 1:
        return np.arange(1, len(x0) + 1)
    return np.cumsum(~np.isnan(x0))


def _htf_inputs(spec: FeatureSpec, agg: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    if spec.input == "candle":
        return agg["close"], agg["volume"]
    if spec.input == "candle.hlc":
        return agg["high"], agg["low"], agg["close"]
    return (agg[_SCALAR_FIELD[spec.input]],)


def _htf_columnar(f: Feature, spec: FeatureSpec, a: np.ndarray, rows: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Values and observation counts of a higher-timeframe feature over one symbol's candles.

    A candle closing at ``ts`` belongs to the bar closing at ``ceil(ts / tf) * tf``; that bar
    is complete at its last base candle when that one closes on the boundary, else at the
    first candle of a later bar (data with a gap): never before all its candles are known."""
    tf = int(spec.timeframe)
    ts = a["ts_exch"][rows]
    n = len(rows)
    b = -(-ts // tf)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    ends = np.r_[starts[1:], n] - 1
    complete_at = np.where(ts[ends] == b[ends] * tf, ends, ends + 1)
    keep = complete_at < n
    agg = {
        "open": a["open"][rows][starts], "high": np.maximum.reduceat(a["high"][rows], starts),
        "low": np.minimum.reduceat(a["low"][rows], starts), "close": a["close"][rows][ends],
        "volume": np.add.reduceat(a["volume"][rows], starts),
    }
    xs = tuple(x[keep] for x in _htf_inputs(spec, agg))
    out = f.run(*xs) if len(xs[0]) else np.zeros(0)
    seen = _counts(spec, xs[0])
    m = np.searchsorted(complete_at[keep], np.arange(n), side="right")
    vals = np.where(m > 0, out[np.maximum(m - 1, 0)] if len(out) else np.nan, np.nan)
    cnt = np.where(m > 0, seen[np.maximum(m - 1, 0)] if len(seen) else 0, 0)
    return vals, cnt


def _pair_columnar(f: Feature, spec: FeatureSpec, a: np.ndarray, rows: np.ndarray,
                   ref_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values and counts of a two-symbol feature over one symbol's candles: closes paired
    with the reference's at common bar times; a row sees the pairs strictly before it."""
    field_ = _SCALAR_FIELD[spec.input]
    ts, ts_r = a["ts_exch"][rows], a["ts_exch"][ref_rows]
    common, i_s, i_r = np.intersect1d(ts, ts_r, assume_unique=True, return_indices=True)
    x, y = a[field_][rows][i_s], a[field_][ref_rows][i_r]
    out = f.run(x, y) if len(common) else np.zeros(0)
    seen = np.cumsum(~np.isnan(x))
    m = np.searchsorted(common, ts, side="left")
    vals = np.where(m > 0, out[np.maximum(m - 1, 0)] if len(out) else np.nan, np.nan)
    cnt = np.where(m > 0, seen[np.maximum(m - 1, 0)] if len(seen) else 0, 0)
    return vals, cnt


def compute_columnar(
    specs: Sequence[FeatureSpec | Mapping[str, Any]],
    arrays: Mapping[MarketKind, np.ndarray],
    n_symbols: int,
    symbols: Sequence[str] | None = None,
) -> dict[str, FeatureColumn]:
    """All features over whole streams; state is per symbol. Values are NaN until a
    feature is warm. ``symbols`` (the names of the ``sym`` indices) is needed by the
    two-symbol kinds, which name their reference symbol."""
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
        ref_rows = None
        if spec.kind in TWO_SYMBOL_KINDS:
            names = list(symbols or ())
            if spec.ref not in names:
                raise ValueError(f"feature {spec.name!r}: reference symbol {spec.ref!r} is not in the "
                                 f"data ({names or 'symbol names not given'})")
            ref_rows = sym_rows[kind][names.index(spec.ref)]
        xs = _inputs(spec, a)
        vals = np.full(len(a), np.nan)
        f = Feature(spec)
        for rows in sym_rows[kind]:
            if not len(rows):
                continue
            if spec.timeframe is not None:
                v, cnt = _htf_columnar(f, spec, a, rows)
            elif ref_rows is not None:
                v, cnt = _pair_columnar(f, spec, a, rows, ref_rows)
            else:
                v = f.run(*(x[rows] for x in xs))
                cnt = _counts(spec, xs[0][rows])
            v[cnt < f.warmup] = np.nan
            vals[rows] = v
        out[spec.name] = FeatureColumn(kind, vals)
    return out


def _masked(f: Any, v: float) -> float:
    return v if f.seen >= f.warmup else np.nan


def _snapshot_with(f: Feature, aux: np.ndarray, value: float) -> bytes:
    """A wrapped feature's state: the inner kernel's, then its own float64 ``aux`` array and
    last value (higher timeframes, paired symbols)."""
    return f.snapshot() + aux.tobytes() + np.array([value]).tobytes()


def _restore_with(f: Feature, raw: bytes, n_aux: int) -> tuple[np.ndarray, float] | None:
    """Inverse of ``_snapshot_with``: restores ``f`` and returns ``(aux, value)``, or None when
    ``raw`` does not hold such a state."""
    tail = 8 * (n_aux + 1)
    if len(raw) <= tail or not f.restore(raw[:-tail]):
        return None
    rest = np.frombuffer(raw[-tail:], dtype=np.float64)
    return rest[:n_aux].copy(), float(rest[n_aux])


class _Resampled:
    """A feature on a higher timeframe, stepped when a bar of that length closes
    (see ``_htf_columnar`` for when that is)."""

    __slots__ = ("f", "spec", "tf", "agg", "value")

    def __init__(self, spec: FeatureSpec) -> None:
        self.f, self.spec, self.tf = Feature(spec), spec, int(spec.timeframe)
        self.agg = np.zeros(7)  # has, bucket, open, high, low, close, volume
        self.value = np.nan

    @property
    def seen(self) -> int:
        return self.f.seen

    @property
    def warmup(self) -> int:
        return self.f.warmup

    def _complete(self) -> None:
        g = self.agg
        bar = {"open": g[2], "high": g[3], "low": g[4], "close": g[5], "volume": g[6]}
        self.value = self.f.update(*(float(x) for x in _htf_inputs(self.spec, bar)))
        g[0] = 0.0

    def on_candle(self, ts: int, o: float, h: float, l: float, c: float, v: float) -> float:  # noqa: E741
        g = self.agg
        b = -(-ts // self.tf)
        if g[0] and b > g[1]:
            self._complete()
        if not g[0]:
            g[:] = (1.0, b, o, h, l, c, v)
        else:
            g[3], g[4], g[5], g[6] = max(g[3], h), min(g[4], l), c, g[6] + v
        if ts == b * self.tf:
            self._complete()
        return self.value

    def snapshot(self) -> bytes:
        return _snapshot_with(self.f, self.agg, self.value)

    def restore(self, raw: bytes) -> bool:
        got = _restore_with(self.f, raw, len(self.agg))
        if got is None:
            return False
        self.agg, self.value = got
        return True


class _Paired:
    """A two-symbol feature of one symbol: its closes and the reference's, paired by bar
    time; a pair is stepped once both are known (``_pair_columnar``)."""

    __slots__ = ("f", "field", "last", "value")

    def __init__(self, spec: FeatureSpec) -> None:
        self.f, self.field = Feature(spec), _SCALAR_FIELD[spec.input]
        self.last = np.full(5, -np.inf)  # own ts, own px, ref ts, ref px, last paired ts
        self.value = np.nan

    @property
    def seen(self) -> int:
        return self.f.seen

    @property
    def warmup(self) -> int:
        return self.f.warmup

    def _pair(self) -> None:
        s = self.last
        if s[0] == s[2] and s[0] > s[4]:
            self.value = self.f.update(float(s[1]), float(s[3]))
            s[4] = s[0]

    def on_own(self, ts: int, px: float) -> float:
        self._pair()
        self.last[0], self.last[1] = ts, px
        return self.value

    def on_ref(self, ts: int, px: float) -> None:
        self._pair()
        self.last[2], self.last[3] = ts, px

    def snapshot(self) -> bytes:
        return _snapshot_with(self.f, self.last, self.value)

    def restore(self, raw: bytes) -> bool:
        got = _restore_with(self.f, raw, len(self.last))
        if got is None:
            return False
        self.last, self.value = got
        return True


class FeatureProcessor:
    """Incremental features per symbol, written to a FeatureStore on each event.

    A :class:`~hlquant.core.market.MarketSink`: it receives market data as the
    same scalar calls as the venue and the kernel's handler (``on_event`` takes
    event objects through the one converter, ``dispatch_market``). Values are NaN
    until warm; with a ``history`` feature it keeps the last candles of each symbol
    and serves them to ``Context.bars`` through the store (``store.bar_source``)."""

    def __init__(self, specs: Sequence[FeatureSpec | Mapping[str, Any]], store: FeatureStore,
                 symbols: Sequence[str]) -> None:
        self.specs = parse_specs(specs)
        self.store = store
        self.by_stream: dict[str, list[FeatureSpec]] = {}
        self._htf: list[FeatureSpec] = []
        self._pairs: list[FeatureSpec] = []
        for s in self.specs:
            if s.timeframe is not None:
                self._htf.append(s)
            elif s.kind in TWO_SYMBOL_KINDS:
                self._pairs.append(s)
            else:
                self.by_stream.setdefault(s.stream, []).append(s)
        self.features: dict[tuple[str, str], Any] = {}
        for sym in symbols:
            self._slots(sym)
        self.depth = history_depth(self.specs)
        self._bars: dict[str, deque] = {}
        if self.depth and hasattr(store, "bar_source"):
            store.bar_source = self
        self.updates = 0

    def _slots(self, sym: str) -> None:
        """Create the feature instances of a symbol (also for a symbol seen the first time)."""
        for s in self.specs:
            key = (sym, s.name)
            if key not in self.features:
                self.features[key] = (_Resampled(s) if s.timeframe is not None
                                      else _Paired(s) if s.kind in TWO_SYMBOL_KINDS else Feature(s))

    def _update(self, stream: str, sym: str, ts: int, inputs: Mapping[str, tuple],
                extra: list[tuple[str, float]] | None = None) -> int:
        specs = self.by_stream.get(stream)
        items = extra if extra is not None else []
        if specs:
            feats = self.features
            for spec in specs:
                f = feats.get((sym, spec.name))
                if f is None:
                    self._slots(sym)
                    f = feats[(sym, spec.name)]
                v = f.update(*inputs[spec.input])
                items.append((spec.name, v if f.seen >= f.warmup else np.nan))
        if not items:
            return 0
        self.store.put_many(sym, items, ts)
        self.updates += len(items)
        return len(items)

    def on_event(self, ev: Event) -> int:
        n0 = self.updates
        dispatch_market(ev, self)
        return self.updates - n0

    def on_candle(self, symbol: str, ts: int, o: float, h: float, l: float, c: float, v: float) -> None:  # noqa: E741
        extra: list[tuple[str, float]] = []
        if self._htf or self._pairs:
            if (symbol, self.specs[0].name) not in self.features:
                self._slots(symbol)
            feats = self.features
            bar = {"open": o, "high": h, "low": l, "close": c, "volume": v}
            for spec in self._htf:
                f = feats[(symbol, spec.name)]
                extra.append((spec.name, _masked(f, f.on_candle(ts, o, h, l, c, v))))
            for spec in self._pairs:
                px = bar[_SCALAR_FIELD[spec.input]]
                for (sym, name), f in feats.items():  # others whose reference this symbol is
                    if name == spec.name and sym != symbol and spec.ref == symbol:
                        f.on_ref(ts, px)
                f = feats[(symbol, spec.name)]
                extra.append((spec.name, _masked(f, f.on_own(ts, px))))
                if spec.ref == symbol:  # its own reference: each bar pairs with itself
                    f.last[2], f.last[3] = ts, px
        if self.depth:
            buf = self._bars.get(symbol)
            if buf is None:
                buf = self._bars[symbol] = deque(maxlen=self.depth)
            buf.append((ts, o, h, l, c, v))
        if "candle" in self.by_stream or extra:
            self._update("candle", symbol, ts, {
                "candle.close": (c,), "candle.open": (o,), "candle.high": (h,), "candle.low": (l,),
                "candle.volume": (v,), "candle": (c, v), "candle.hlc": (h, l, c)}, extra)

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

    def bars(self, symbol: str, n: int) -> Bars:
        """The last ``n`` candles of ``symbol`` seen so far (fewer before there are n)."""
        buf = self._bars.get(symbol) or ()
        rows = list(buf)[-n:] if n > 0 else []
        cols = list(zip(*rows, strict=True)) if rows else [()] * 6
        return Bars(np.array(cols[0], dtype=np.int64), *(np.array(c, dtype=np.float64) for c in cols[1:]))

    # --- persistence (a stream processor that restarts resumes its kernels' state) ---
    def state_of(self, symbol: str) -> dict[str, bytes]:
        """Every feature's state of ``symbol`` (kernel, observations, bar in progress), as bytes."""
        return {name: f.snapshot() for (sym, name), f in self.features.items() if sym == symbol}

    def load_state(self, symbol: str, states: Mapping[str, bytes]) -> int:
        """Restore states written by ``state_of``; returns how many were restored."""
        self._slots(symbol)
        n = 0
        for (sym, name), f in self.features.items():
            raw = states.get(name)
            if sym == symbol and raw is not None and f.restore(bytes(raw)):
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
    row it delivered (``cursor(kind)[s] = row``); ``bars`` serves the candles up to
    that row (``Context.bars``); ``bind`` attaches the columns
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
        self._index = {s: i for i, s in enumerate(self.symbols)}
        self._candles: np.ndarray | None = None  # bars(): candle rows by symbol, built on first use
        self._rows: list[np.ndarray] | None = None
        self._pos: np.ndarray | None = None

    def bind(self, cols: Mapping[str, FeatureColumn], arrays: Mapping[MarketKind, np.ndarray]) -> None:
        """Read ``cols`` (aligned with the rows of ``arrays``) from now on."""
        self._candles = arrays.get(MarketKind.CANDLE)
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

    def bars(self, symbol: str, n: int) -> Bars:
        """The last ``n`` candles of ``symbol`` delivered so far (fewer before there are n):
        ``Context.bars``, no look-ahead (the candle cursor is the loop's)."""
        a = self._candles
        if a is None or int(MarketKind.CANDLE) not in self._cursor:
            raise HlquantError("no bar history in this run: declare it with `history = N` on the agent")
        if self._rows is None:
            order = np.argsort(a["sym"], kind="stable")
            bounds = np.searchsorted(a["sym"][order], np.arange(len(self.symbols) + 1))
            self._rows = [order[bounds[i]: bounds[i + 1]] for i in range(len(self.symbols))]
            self._pos = np.empty(len(a), dtype=np.int64)
            for rows in self._rows:
                self._pos[rows] = np.arange(len(rows))
        s = self._index[symbol]
        r = self._cursor[int(MarketKind.CANDLE)][s]
        p = int(self._pos[r]) + 1 if r >= 0 else 0
        sel = self._rows[s][max(0, p - n): p] if n > 0 else self._rows[s][:0]
        return Bars(a["ts_exch"][sel], *(a[f][sel] for f in BAR_FIELDS))

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
