"""``MarketData``: columnar market history, the input of every backtest.

One numpy structured array per stream, in the layouts of
``hlquant.core.events.MARKET_DTYPES``. Each array is sorted by
``(ts_exch, sym)``; ``sym`` indexes ``symbols``. Candle timestamps are bar
*close* times (a bar is known only when it closes), so a backtest that
consumes events in ``merged()`` order cannot look ahead.

On-disk format (``save`` / ``load``): one Parquet file per stream
(``candles.parquet``, ``trades.parquet``, ``l2.parquet``, ``funding.parquet``,
``bbo.parquet``, ``mark.parquet``), zstd-compressed, columns named exactly as
the dtype fields. L2 level arrays are stored as fixed-size list columns
(``bid_px`` is ``fixed_size_list<double>[L2_DEPTH]``, best level first). The
symbol table, candle interval and ``meta`` live in the Parquet key-value
metadata under ``b"hlquant"`` (JSON), so each file is self-describing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hlquant.core.errors import DataError
from hlquant.core.events import (
    BBO,
    L2_DEPTH,
    MARKET_DTYPES,
    BookSnapshot,
    Candle,
    Event,
    FundingRate,
    MarketKind,
    MarkPrice,
    Trade,
)

STREAMS: dict[MarketKind, str] = {
    MarketKind.CANDLE: "candles",
    MarketKind.TRADE: "trades",
    MarketKind.L2: "l2",
    MarketKind.FUNDING: "funding",
    MarketKind.BBO: "bbo",
    MarketKind.MARK: "mark",
}
"""Stream name (attribute of ``MarketData`` and file stem) of each kind."""

_META_KEY = b"hlquant"
_FORMAT_VERSION = 1


def empty(kind: MarketKind, n: int = 0) -> np.ndarray:
    """A zeroed array of ``n`` rows in the layout of ``kind``."""
    return np.zeros(n, dtype=MARKET_DTYPES[kind])


def sort_rows(a: np.ndarray) -> np.ndarray:
    """Stable sort by (ts_exch, sym); returns ``a`` itself when already sorted
    (the common case, checked in O(n) so constructing MarketData stays cheap)."""
    if len(a) < 2:
        return a
    ts, sym = a["ts_exch"], a["sym"]
    dts = np.diff(ts)
    if np.all((dts > 0) | ((dts == 0) & (np.diff(sym) >= 0))):
        return a
    return a[np.lexsort((sym, ts))]


def to_ms(t: int | float | str | pd.Timestamp | np.datetime64 | None) -> int | None:
    """Milliseconds since epoch from an int (already ms) or anything pandas parses (UTC)."""
    if t is None:
        return None
    if isinstance(t, (int, np.integer)):
        return int(t)
    if isinstance(t, float):
        return int(t)
    ts = pd.Timestamp(t)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value // 1_000_000)


def interval_label(interval_ms: int) -> str:
    """Hyperliquid-style interval name ("1m", "15m", "1h", "1d")."""
    for unit, ms in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if interval_ms % ms == 0:
            return f"{interval_ms // ms}{unit}"
    return f"{interval_ms}ms"


@dataclass(eq=False)
class MarketData:
    """Columnar history of several symbols and streams (see module docstring).

    - candles, trades, l2, funding, bbo, mark: structured arrays (``None`` = empty).
    - symbols: symbol table; the ``sym`` field of every row indexes it.
    - interval_ms: candle interval (bar close = open + interval).
    - meta: free-form provenance (generator parameters, source files...).
    """

    candles: np.ndarray | None = None
    trades: np.ndarray | None = None
    l2: np.ndarray | None = None
    funding: np.ndarray | None = None
    bbo: np.ndarray | None = None
    mark: np.ndarray | None = None
    symbols: list[str] = field(default_factory=list)
    interval_ms: int = 60_000
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.symbols = [str(s) for s in self.symbols]
        if len(set(self.symbols)) != len(self.symbols):
            raise DataError(f"duplicate symbols in symbol table {self.symbols}")
        self.interval_ms = int(self.interval_ms)
        for kind, name in STREAMS.items():
            a = getattr(self, name)
            dt = MARKET_DTYPES[kind]
            if a is None:
                a = empty(kind)
            elif a.dtype != dt:
                try:
                    a = a.astype(dt)
                except (TypeError, ValueError) as e:
                    raise DataError(f"{name}: array dtype {a.dtype} is not {dt}: {e}") from None
            a = np.ascontiguousarray(a)
            if len(a) and (a["sym"].min() < 0 or a["sym"].max() >= len(self.symbols)):
                raise DataError(
                    f"{name}: sym index out of range for {len(self.symbols)} symbols "
                    f"(min {a['sym'].min()}, max {a['sym'].max()})"
                )
            setattr(self, name, sort_rows(a))

    # ------------------------------------------------------------------ access
    def arrays(self) -> dict[MarketKind, np.ndarray]:
        """All streams by kind (including empty ones), in MarketKind order."""
        return {k: getattr(self, STREAMS[k]) for k in sorted(STREAMS)}

    def __len__(self) -> int:
        return sum(len(a) for a in self.arrays().values())

    def counts(self) -> dict[str, int]:
        """Rows per stream, e.g. ``{"candles": 30240, "trades": 0, ...}``."""
        return {STREAMS[k]: len(a) for k, a in self.arrays().items()}

    def span(self) -> tuple[int, int]:
        """(first, last) ts_exch over all streams, in ms; (0, 0) when empty."""
        lo = [int(a["ts_exch"][0]) for a in self.arrays().values() if len(a)]
        hi = [int(a["ts_exch"][-1]) for a in self.arrays().values() if len(a)]
        return (min(lo), max(hi)) if lo else (0, 0)

    def sym_id(self, symbol: str) -> int:
        try:
            return self.symbols.index(symbol)
        except ValueError:
            raise KeyError(f"unknown symbol {symbol!r}; have {self.symbols}") from None

    def __repr__(self) -> str:
        c = ", ".join(f"{k}={v}" for k, v in self.counts().items() if v)
        s, e = self.span()
        return (
            f"MarketData(symbols={self.symbols}, {c or 'empty'}, "
            f"span={pd.Timestamp(s, unit='ms', tz='UTC')}..{pd.Timestamp(e, unit='ms', tz='UTC')})"
        )

    # ------------------------------------------------------------------ order
    def merged(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every event of every stream in replay order.

        Returns ``(ts, kind, row)``: ``ts`` (i8, ts_exch), ``kind`` (i1, a
        MarketKind value) and ``row`` (i8, index into that kind's array).
        Order: ts_exch, then MarketKind value (FUNDING < L2 < BBO < TRADE <
        CANDLE < MARK, so a bar closing on the hour sees the new funding rate
        and the book of that instant), then sym; remaining ties keep row
        order (np.lexsort is stable). This is the backtest's hot input, so it
        is one vectorized sort.
        """
        arrs = [(k, a) for k, a in self.arrays().items() if len(a)]
        if not arrs:
            z = np.zeros(0, np.int64)
            return z, np.zeros(0, np.int8), z.copy()
        ts = np.concatenate([a["ts_exch"] for _, a in arrs])
        sym = np.concatenate([a["sym"] for _, a in arrs])
        kind = np.concatenate([np.full(len(a), int(k), np.int8) for k, a in arrs])
        row = np.concatenate([np.arange(len(a), dtype=np.int64) for _, a in arrs])
        if len(arrs) == 1:
            return ts.copy(), kind, row  # one stream: already in (ts, sym) order
        order = np.lexsort((sym, kind, ts))
        return ts[order], kind[order], row[order]

    # ------------------------------------------------------------------ subset
    def select(
        self,
        symbols: Sequence[str] | str | None = None,
        start: int | str | pd.Timestamp | None = None,
        end: int | str | pd.Timestamp | None = None,
    ) -> MarketData:
        """Subset by symbols (new table in the given order, ``sym`` re-indexed)
        and by ``start <= ts_exch < end`` (ms or anything pandas parses, UTC)."""
        if isinstance(symbols, str):
            symbols = [symbols]
        new_syms = list(self.symbols) if symbols is None else [str(s) for s in symbols]
        for s in new_syms:
            self.sym_id(s)  # raises KeyError for unknown symbols
        remap = np.full(max(len(self.symbols), 1), -1, np.int16)
        for i, s in enumerate(new_syms):
            remap[self.symbols.index(s)] = i
        t0, t1 = to_ms(start), to_ms(end)
        out: dict[str, np.ndarray] = {}
        for kind, a in self.arrays().items():
            m = remap[a["sym"]] >= 0 if len(a) else np.zeros(0, bool)
            if t0 is not None:
                m &= a["ts_exch"] >= t0
            if t1 is not None:
                m &= a["ts_exch"] < t1
            b = a[m]
            b["sym"] = remap[b["sym"]]
            out[STREAMS[kind]] = b
        meta = dict(self.meta)
        meta["selected_from"] = self.fingerprint()
        return MarketData(**out, symbols=new_syms, interval_ms=self.interval_ms, meta=meta)

    def thin_trades(self, every: int) -> MarketData:
        """Keep every ``every``-th trade (other streams untouched): a lighter event stream
        for drills that step the whole system one event at a time."""
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        out = {STREAMS[k]: (a[::every] if k == MarketKind.TRADE else a) for k, a in self.arrays().items()}
        meta = dict(self.meta)
        meta["trades_thinned_from"] = self.fingerprint()
        return MarketData(**out, symbols=list(self.symbols), interval_ms=self.interval_ms, meta=meta)

    # ------------------------------------------------------------------ pandas
    def _frame(self, kind: MarketKind, symbol: str, cols: Sequence[str]) -> pd.DataFrame:
        a = getattr(self, STREAMS[kind])
        a = a[a["sym"] == self.sym_id(symbol)]
        idx = pd.DatetimeIndex(pd.to_datetime(a["ts_exch"], unit="ms", utc=True), name="ts")
        return pd.DataFrame({c: a[c] for c in cols}, index=idx)

    def candles_frame(self, symbol: str) -> pd.DataFrame:
        """OHLCV of one symbol, indexed by bar *close* time (UTC)."""
        return self._frame(MarketKind.CANDLE, symbol, ("open", "high", "low", "close", "volume"))

    def trades_frame(self, symbol: str) -> pd.DataFrame:
        """Trades of one symbol: side (+1 buy / -1 sell aggressor), px, sz, tid."""
        return self._frame(MarketKind.TRADE, symbol, ("side", "px", "sz", "tid"))

    def funding_frame(self, symbol: str) -> pd.DataFrame:
        """Hourly funding of one symbol: rate (per hour), premium, oracle_px."""
        return self._frame(MarketKind.FUNDING, symbol, ("rate", "premium", "oracle_px"))

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> str:
        """sha256 over the symbol table, interval and every array's bytes.
        Audit replay compares it to prove a session is replayed on the same data;
        ``meta`` is deliberately excluded (provenance, not content)."""
        h = hashlib.sha256()
        h.update(json.dumps({"symbols": self.symbols, "interval_ms": self.interval_ms}).encode())
        for kind, a in self.arrays().items():
            h.update(f"|{kind.name}|{a.dtype.descr}|{len(a)}|".encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    def equals(self, other: MarketData) -> bool:
        return isinstance(other, MarketData) and self.fingerprint() == other.fingerprint()

    # ------------------------------------------------------------------ events
    @classmethod
    def from_events(
        cls,
        events: Iterable[Event],
        symbols: Sequence[str] | None = None,
        interval_ms: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> MarketData:
        """Build columnar history from row events (e.g. a live recorder's buffer).
        Inverse of ``ReplayConnector.normalize``; unknown event types are ignored.
        Symbols not in ``symbols`` are appended in order of appearance."""
        table: list[str] = list(symbols or [])
        index = {s: i for i, s in enumerate(table)}
        rows: dict[MarketKind, list[tuple]] = {k: [] for k in STREAMS}
        nan = float("nan")
        ival = interval_ms
        for ev in events:
            sym = getattr(ev, "symbol", None)
            if sym is None:
                continue
            i = index.get(sym)
            if i is None:
                i = index[sym] = len(table)
                table.append(sym)
            head = (ev.ts_exch, ev.ts_recv, i)
            if isinstance(ev, Candle):
                if ival is None and ev.ts_open:
                    ival = ev.ts_exch - ev.ts_open
                rows[MarketKind.CANDLE].append(
                    head + (ev.open, ev.high, ev.low, ev.close, ev.volume, ev.n)
                )
            elif isinstance(ev, Trade):
                rows[MarketKind.TRADE].append(head + (int(ev.side), ev.px, ev.sz, ev.tid))
            elif isinstance(ev, BookSnapshot):
                lv = np.full((4, L2_DEPTH), nan)
                lv[1, :] = lv[3, :] = 0.0
                for j, (px, sz) in enumerate(ev.bids[:L2_DEPTH]):
                    lv[0, j], lv[1, j] = px, sz
                for j, (px, sz) in enumerate(ev.asks[:L2_DEPTH]):
                    lv[2, j], lv[3, j] = px, sz
                rows[MarketKind.L2].append(head + (lv[0], lv[1], lv[2], lv[3]))
            elif isinstance(ev, BBO):
                rows[MarketKind.BBO].append(head + (ev.bid_px, ev.bid_sz, ev.ask_px, ev.ask_sz))
            elif isinstance(ev, FundingRate):
                rows[MarketKind.FUNDING].append(head + (ev.rate, ev.premium, ev.oracle_px))
            elif isinstance(ev, MarkPrice):
                rows[MarketKind.MARK].append(head + (ev.mark_px, ev.oracle_px))
        arrs = {STREAMS[k]: np.array(r, dtype=MARKET_DTYPES[k]) for k, r in rows.items()}
        return cls(**arrs, symbols=table, interval_ms=ival or 60_000, meta=dict(meta or {}))

    # ------------------------------------------------------------------ parquet
    def _header(self) -> bytes:
        return json.dumps(
            {
                "version": _FORMAT_VERSION,
                "symbols": self.symbols,
                "interval_ms": self.interval_ms,
                "meta": self.meta,
            },
            default=str,
        ).encode()

    def save(self, directory: str | Path) -> Path:
        """Write one zstd Parquet file per stream into ``directory`` (created)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        header = self._header()
        for kind, a in self.arrays().items():
            table = _to_arrow(a).replace_schema_metadata({_META_KEY: header})
            # Measured on the sample: dictionary pages for scalar floats (tick-rounded
            # prices and lot sizes repeat a lot) + delta ints + zstd is ~40 % smaller
            # than plain or byte-stream-split; L2 list columns compress best plain.
            fields = table.schema
            floats = [f.name for f in fields if pa.types.is_floating(f.type)]
            ints = {f.name: "DELTA_BINARY_PACKED" for f in fields if pa.types.is_integer(f.type)}
            pq.write_table(
                table,
                d / f"{STREAMS[kind]}.parquet",
                compression="zstd",
                compression_level=9,
                use_dictionary=floats or False,
                column_encoding=ints,
            )
        return d

    @classmethod
    def load(cls, directory: str | Path) -> MarketData:
        """Read a directory written by ``save``. Missing stream files load as empty."""
        d = Path(directory)
        if not d.is_dir():
            raise DataError(f"{d}: not a directory")
        return cls._read(lambda name: d / name if (d / name).is_file() else None, str(d))

    @classmethod
    def _read(cls, open_file: Callable[[str], Any], where: str) -> MarketData:
        """Shared by ``load`` and the bundled-sample loader (importlib.resources)."""
        header: dict[str, Any] | None = None
        arrs: dict[str, np.ndarray] = {}
        for kind, name in STREAMS.items():
            src = open_file(f"{name}.parquet")
            if src is None:
                continue
            table = pq.read_table(src)
            md = table.schema.metadata or {}
            if _META_KEY not in md:
                raise DataError(f"{where}/{name}.parquet: not an hlquant MarketData file")
            h = json.loads(md[_META_KEY])
            if header is None:
                header = h
            elif h["symbols"] != header["symbols"]:
                raise DataError(f"{where}/{name}.parquet: symbol table differs from other files")
            arrs[name] = _from_arrow(table, kind, f"{where}/{name}.parquet")
        if header is None:
            raise DataError(f"{where}: no MarketData parquet files (e.g. candles.parquet)")
        return cls(
            **arrs,
            symbols=header["symbols"],
            interval_ms=header["interval_ms"],
            meta=header.get("meta", {}),
        )


def is_native_parquet(path: str | Path) -> bool:
    """True if ``path`` is a Parquet file written by ``MarketData.save``."""
    try:
        md = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return False
    return _META_KEY in md


def _to_arrow(a: np.ndarray) -> pa.Table:
    cols: dict[str, pa.Array] = {}
    for name in a.dtype.names:
        col = a[name]
        if col.ndim == 2:
            flat = pa.array(np.ascontiguousarray(col).ravel())
            cols[name] = pa.FixedSizeListArray.from_arrays(flat, col.shape[1])
        else:
            cols[name] = pa.array(col)
    return pa.table(cols)


def _from_arrow(table: pa.Table, kind: MarketKind, where: str) -> np.ndarray:
    dt = MARKET_DTYPES[kind]
    out = np.zeros(table.num_rows, dtype=dt)
    for name in dt.names:
        if name not in table.column_names:
            raise DataError(f"{where}: missing column {name!r}")
        col = table.column(name).combine_chunks()
        shape = dt.fields[name][0].shape
        if shape:
            vals = col.flatten().to_numpy(zero_copy_only=False)
            out[name] = vals.reshape(table.num_rows, *shape)
        else:
            out[name] = col.to_numpy(zero_copy_only=False)
    return out
