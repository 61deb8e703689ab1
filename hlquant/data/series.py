"""External series (sentiment, economic data, on-chain indexers), columnar.

A :class:`SignalSeries` is what a backtest merges with the market data: one row
per observation, long format (``ts_exch``, ``ts_recv``, ``symbol``, ``name``,
``value``), sorted by receive time. The backtest applies each row at its
``ts_recv`` -- the moment it would have reached us -- so a value is never seen
earlier than it could have been; ``ts_exch`` (the source's time of the
observation) is the age the staleness rules judge.

File format (``read_signal_file``; CSV, CSV.gz or Parquet, column names
case-insensitive, one row per time and symbol):

- ``ts`` (required): the source's time of the observation: int ms since epoch or
  ISO-8601 (naive = UTC);
- ``ts_recv`` (optional): when the value became known, same formats, never before
  ``ts``; default ``ts + lag_ms`` (the connector's setting);
- ``symbol`` (optional): the coin the value belongs to; absent: a series of the
  whole market (stored under ``GLOBAL_SERIES``);
- every other column (or those listed in ``columns``) is one series, a finite
  number; an empty cell means no observation of that series in that row.

A bad file raises ``DataError`` naming the file, the column and the 1-based data
row, exactly like the market loaders (``hlquant.data.loaders``), e.g.
``sentiment.csv row 3: column 'sentiment' is 'high', not a number``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from hlquant.core.errors import DataError
from hlquant.core.events import Signal
from hlquant.data.loaders import read_stream
from hlquant.data.schema import Column, StreamSchema

RESERVED = ("ts", "ts_recv", "symbol")
"""Columns of a signal file that are not series."""
SUFFIXES = (".parquet", ".csv", ".csv.gz")


@dataclass
class SignalSeries:
    """Observations of external series, sorted by ``(ts_recv, ts_exch)`` (stable)."""

    ts_exch: np.ndarray  # int64 ms
    ts_recv: np.ndarray  # int64 ms
    symbol: np.ndarray  # object: str, or None for a market-wide series
    name: np.ndarray  # object: str
    value: np.ndarray  # float64

    def __post_init__(self) -> None:
        order = np.lexsort((self.ts_exch, self.ts_recv))
        if len(order) and not np.array_equal(order, np.arange(len(order))):
            for f in ("ts_exch", "ts_recv", "symbol", "name", "value"):
                setattr(self, f, getattr(self, f)[order])

    @classmethod
    def empty(cls) -> SignalSeries:
        z = np.zeros(0, np.int64)
        return cls(z, z.copy(), np.zeros(0, object), np.zeros(0, object), np.zeros(0))

    @classmethod
    def concat(cls, parts: Sequence[SignalSeries]) -> SignalSeries:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts])
                     for f in ("ts_exch", "ts_recv", "symbol", "name", "value")))

    @classmethod
    def from_frame(cls, f: pd.DataFrame) -> SignalSeries:
        """A long frame with columns ``ts_exch, ts_recv, symbol, name, value``."""
        sym = f["symbol"].to_numpy(dtype=object) if "symbol" in f else np.full(len(f), None, object)
        sym = np.array([None if (s is None or s != s or s == "") else str(s) for s in sym], dtype=object)
        return cls(f["ts_exch"].to_numpy(np.int64), f["ts_recv"].to_numpy(np.int64), sym,
                   f["name"].astype(str).to_numpy(dtype=object), f["value"].to_numpy(np.float64))

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"ts_exch": self.ts_exch, "ts_recv": self.ts_recv, "symbol": self.symbol,
                             "name": self.name, "value": self.value})

    def __len__(self) -> int:
        return len(self.ts_recv)

    def names(self) -> set[str]:
        return set(self.name.tolist())

    def select(self, symbols: Sequence[str] | None = None, start: int | None = None,
               end: int | None = None) -> SignalSeries:
        """Rows of these symbols (market-wide rows always kept) received in ``[start, end)``."""
        m = np.ones(len(self), bool)
        if symbols is not None:
            keep = set(symbols)
            m &= np.array([s is None or s in keep for s in self.symbol], bool)
        if start is not None:
            m &= self.ts_recv >= int(start)
        if end is not None:
            m &= self.ts_recv < int(end)
        return SignalSeries(self.ts_exch[m], self.ts_recv[m], self.symbol[m], self.name[m], self.value[m])

    def events(self) -> Iterator[Signal]:
        """Every row as a :class:`Signal`, in receive order."""
        for te, tr, s, n, v in zip(self.ts_exch.tolist(), self.ts_recv.tolist(), self.symbol.tolist(),
                                   self.name.tolist(), self.value.tolist(), strict=True):
            yield Signal(te, tr, n, v, s)


def _columns_of(path: Path) -> list[str]:
    try:
        if path.name.endswith(".parquet"):
            names = pq.read_schema(path).names
        else:
            names = list(pd.read_csv(path, nrows=0).columns)
    except (OSError, ValueError) as e:
        raise DataError(f"{path.name}: cannot read file: {e}") from None
    return [str(c).strip().lower() for c in names if not str(c).startswith("__index_level")]


def signal_schema(columns: Sequence[str], has_symbol: bool) -> StreamSchema:
    """The file schema of a signal file with these value columns."""
    cols = [Column("ts", "ts", doc="the source's time of the observation"),
            Column("ts_recv", "ts", required=False, doc="when it became known; default ts + lag_ms")]
    if has_symbol:
        cols.append(Column("symbol", "symbol", doc="the coin; absent: a market-wide series"))
    cols += [Column(c, "float", nullable=True, doc="one series; empty = no observation") for c in columns]
    key = ("ts", "symbol") if has_symbol else ("ts",)
    return StreamSchema("signals", None, tuple(cols), key)  # type: ignore[arg-type]  # not a market stream


def read_signal_file(path: str | Path, columns: Sequence[str] | None = None, prefix: str = "",
                     lag_ms: int = 0) -> SignalSeries:
    """Read and validate a signal file (module docstring). Each value column becomes the
    series ``prefix + column``; ``columns`` restricts (and requires) them."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    if not p.name.endswith(SUFFIXES):
        raise DataError(f"{p.name}: a signal file is {', '.join(SUFFIXES)}")
    have = _columns_of(p)
    if columns is None:
        values = [c for c in have if c not in RESERVED]
        if not values:
            raise DataError(f"{p.name}: no value column (have: {', '.join(have)})")
    else:
        values = [str(c).strip().lower() for c in columns]
        bad = [c for c in values if c in RESERVED]
        if bad:
            raise DataError(f"{p.name}: {bad[0]!r} is not a value column")
    cols = read_stream(p, signal_schema(values, "symbol" in have))
    ts = cols["ts"]
    if lag_ms < 0:
        raise DataError(f"{p.name}: lag_ms must be >= 0, got {lag_ms}")
    if "ts_recv" in cols:
        recv = cols["ts_recv"]
        early = recv < ts
        if early.any():
            i = int(np.argmax(early))
            raise DataError(f"{p.name} row {i + 1}: column 'ts_recv' is {recv[i]}, before 'ts' {ts[i]}: "
                            "a value cannot be known before it exists")
    else:
        recv = ts + int(lag_ms)
    sym = cols["symbol"] if "symbol" in cols else np.full(len(ts), None, object)
    parts = []
    for c in values:
        v = cols[c]
        m = ~np.isnan(v)
        parts.append(SignalSeries(ts[m], recv[m], sym[m], np.full(int(m.sum()), prefix + c, object), v[m]))
    return SignalSeries.concat(parts)


def write_signal_file(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a wide frame (``ts``, optional ``ts_recv`` and ``symbol``, value columns) in
    the signal file format; the suffix chooses CSV or Parquet."""
    p = Path(path).expanduser()
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.name.endswith(".parquet"):
        frame.to_parquet(p, index=False)
    elif p.name.endswith((".csv", ".csv.gz")):
        frame.to_csv(p, index=False)
    else:
        raise DataError(f"{p.name}: a signal file is {', '.join(SUFFIXES)}")
    return p


__all__ = ["SignalSeries", "read_signal_file", "write_signal_file", "signal_schema", "RESERVED"]
