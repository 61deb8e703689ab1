"""Load market data: the bundled sample, a saved ``MarketData``, or users' own files.

Users' files follow ``hlquant.data.schema`` (documented in docs/data.md).
Validation is vectorized; a bad file raises ``DataError`` naming the file,
the column and the 1-based data row (the header is not counted), e.g.
``candles.csv row 17: column 'high' is 99.5, below 'low' 100.0``. Unsorted
input is sorted, not rejected. Data that would make a backtest lie is rejected
too: candles off their grid (a bar one second late made the old "smallest step"
rule read 1 s bars, so every close was seen 59 s early), timestamps in another
unit or out of range, absurd magnitudes, a crossed book.
"""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from hlquant.core.errors import DataError
from hlquant.core.events import L2_DEPTH, MARKET_DTYPES, MarketKind
from hlquant.data.market import STREAMS, MarketData, interval_label, is_native_parquet
from hlquant.data.schema import (
    FILE_SUFFIXES,
    FUTURE_MARGIN_MS,
    MIN_TS_MS,
    SCHEMAS,
    Column,
    StreamSchema,
)

log = logging.getLogger(__name__)

SAMPLE_PACKAGE = "hlquant.data"
SAMPLE_DIR = "sample"

_INT64_MAX = 2**63 - 1
_SIDES = {"b": 1, "buy": 1, "bid": 1, "1": 1, "a": -1, "sell": -1, "ask": -1, "-1": -1}


# ----------------------------------------------------------------------------- entry points
def load_sample() -> MarketData:
    """The bundled synthetic sample (BTC, ETH, SOL; 7 days of 1m candles, trades,
    L2 every 5 min, hourly funding), read through importlib.resources so it works
    from an installed wheel too."""
    root = resources.files(SAMPLE_PACKAGE).joinpath(SAMPLE_DIR)

    def open_file(name: str) -> Any:
        f = root.joinpath(name)
        return io.BytesIO(f.read_bytes()) if f.is_file() else None

    return MarketData._read(open_file, f"{SAMPLE_PACKAGE}/{SAMPLE_DIR}")


def load(spec: str | Path | MarketData, **kwargs: Any) -> MarketData:
    """``"sample"`` -> the bundled sample; a path -> ``load_files(path, **kwargs)``;
    a MarketData passes through (so configs and code can hand either)."""
    if isinstance(spec, MarketData):
        return spec
    if isinstance(spec, str) and spec.strip().lower() == "sample":
        return load_sample()
    return load_files(spec, **kwargs)


def find_stream_file(directory: Path, stem: str) -> Path | None:
    for suffix in FILE_SUFFIXES:
        p = directory / f"{stem}{suffix}"
        if p.is_file():
            return p
    return None


def load_files(
    path: str | Path,
    symbols: Sequence[str] | None = None,
    interval_ms: int | None = None,
    candle_ts: Literal["open", "close"] = "open",
    on_error: Literal["raise", "skip"] = "raise",
    bad_rows: list[tuple[str, int, str]] | None = None,
    irregular: Literal["reject", "accept"] = "reject",
) -> MarketData:
    """Load a directory of stream files (or one candles file).

    - path: directory with ``candles.{parquet,csv}`` (required) and optional
      ``trades``, ``l2``, ``funding``, ``bbo``, ``mark``; or a single candles file.
      A directory written by ``MarketData.save`` is recognised and loaded as is.
    - symbols: symbol table order; rows of other symbols are dropped. Default:
      all symbols found, sorted alphabetically.
    - interval_ms: candle interval; default the dominant spacing (the most common step
      between consecutive bars of a symbol; 60000 if every symbol has a single bar).
    - candle_ts: whether candle ``ts`` is the bar open (default) or close time.
    - on_error: ``raise`` (default) stops at the first bad row with its position;
      ``skip`` drops bad rows and appends ``(file, line, reason)`` to ``bad_rows``.
    - irregular: ``reject`` (default) refuses candles off the interval's grid, naming the
      first; ``accept`` keeps them (logged, counted in ``meta["irregular_bars"]``).
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or directory")
    if p.is_file():
        files = {"candles": p}
    else:
        cfile = find_stream_file(p, "candles")
        if cfile is None:
            raise DataError(f"{p}: missing candles file (candles.parquet or candles.csv)")
        if cfile.suffix == ".parquet" and is_native_parquet(cfile):
            md = MarketData.load(p)
            return md if symbols is None else md.select(symbols)
        files = {"candles": cfile}
        for stem in SCHEMAS:
            if stem != "candles" and (f := find_stream_file(p, stem)) is not None:
                files[stem] = f
    if candle_ts not in ("open", "close"):
        raise ValueError(f"candle_ts must be 'open' or 'close', got {candle_ts!r}")

    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if irregular not in ("reject", "accept"):
        raise ValueError(f"irregular must be 'reject' or 'accept', got {irregular!r}")
    frames = {stem: read_stream(f, SCHEMAS[stem], on_error, bad_rows) for stem, f in files.items()}
    if symbols is None:
        table = sorted(set().union(*(set(fr["symbol"]) for fr in frames.values())))
    else:
        table = [str(s) for s in symbols]
    candles = frames["candles"]
    if interval_ms is None:
        interval_ms = infer_interval(candles["ts"], candles["symbol"])
    off = off_grid(candles["ts"], candles["symbol"], interval_ms)
    meta: dict[str, Any] = {"source": "files", "files": {k: str(v) for k, v in files.items()}}
    if off.any():
        i = int(np.argmax(off))
        label = interval_label(interval_ms)
        what = (f"column 'ts' is {_iso(candles['ts'][i])}, off the {label} grid of {candles['symbol'][i]} "
                f"({int(off.sum())} of {len(off)} bars; {label} is the most common step between bars)")
        if irregular == "reject":
            raise _row_error(files["candles"].name, i, f"{what}; data.irregular=accept keeps them")
        log.warning("%s row %d: %s; kept (irregular=accept)", files["candles"].name, i + 1, what)
        meta["irregular_bars"] = int(off.sum())
    shift = interval_ms if candle_ts == "open" else 0
    arrays = {
        STREAMS[SCHEMAS[stem].kind]: _to_array(fr, SCHEMAS[stem], table, shift)
        for stem, fr in frames.items()
    }
    return MarketData(**arrays, symbols=table, interval_ms=interval_ms, meta=meta)


# ----------------------------------------------------------------------------- reading
def read_stream(path: Path, schema: StreamSchema, on_error: str = "raise",
                bad_rows: list[tuple[str, int, str]] | None = None) -> dict[str, np.ndarray]:
    """Read and validate one stream file into typed columns (file order kept).

    Returns numpy columns named as the schema (``ts``/``ts_recv`` as int ms,
    ``side`` as +1/-1, ``symbol`` as str objects); absent optional columns are
    filled with their default (``tid``: running number, ``ts_recv``: missing).
    """
    fname = path.name
    try:
        if path.name.endswith(".parquet"):
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{fname}: cannot read file: {e}") from None
    given = [str(c).strip() for c in df.columns]
    df.columns = [c.lower() for c in given]
    seen: dict[str, str] = {}
    for c in given:
        if c.lower() in seen:
            raise DataError(f"{fname}: columns {seen[c.lower()]!r} and {c!r} differ only in case "
                            "(column names are case-insensitive): keep one")
        seen[c.lower()] = c
    if not len(df):
        hint = "" if schema.name == "candles" else "; remove the file if the stream has no data"
        raise DataError(f"{fname}: no data rows (only a header: {', '.join(given) or 'none'}){hint}")
    if on_error == "skip":
        return _read_skipping(df, fname, schema, bad_rows if bad_rows is not None else [])
    return _validate(df, fname, schema)


_ROW = re.compile(r" row (\d+): ")


def _read_skipping(df: pd.DataFrame, fname: str, schema: StreamSchema,
                   bad_rows: list[tuple[str, int, str]]) -> dict[str, np.ndarray]:
    """Validate, dropping each bad row (reported with its 1-based line in the file)."""
    df = df.reset_index(drop=True)
    orig = np.arange(len(df))
    while True:
        try:
            return _validate(df, fname, schema)
        except DataError as e:
            m = _ROW.search(str(e))
            if m is None:
                raise  # a file-level problem (missing column...): nothing to skip
            i = int(m.group(1)) - 1
            bad_rows.append((fname, int(orig[i]) + 1, str(e).split(": ", 1)[1]))
            df = df.drop(index=df.index[i]).reset_index(drop=True)
            orig = np.delete(orig, i)


def _validate(df: pd.DataFrame, fname: str, schema: StreamSchema) -> dict[str, np.ndarray]:
    missing = [c for c in schema.required if c not in df.columns]
    if missing:
        raise DataError(
            f"{fname}: missing column {missing[0]!r} (have: {', '.join(map(str, df.columns))})"
        )
    out: dict[str, np.ndarray] = {}
    n = len(df)
    for col in schema.columns:
        if col.name not in df.columns:
            if col.name == "tid":
                out["tid"] = np.arange(n, dtype=np.int64)
            elif col.default is not None:
                out[col.name] = np.full(n, col.default)
            continue
        s = df[col.name]
        if col.type == "ts":
            out[col.name] = parse_ts(s, fname, col.name)
        elif col.type == "symbol":
            out[col.name] = _parse_symbol(s, fname)
        elif col.type == "side":
            out[col.name] = _parse_side(s, fname)
        else:
            out[col.name] = _parse_number(s, fname, col)
    _check_values(out, schema, fname)
    _check_duplicates(out, schema, fname)
    return out


def _row_error(fname: str, i: int, msg: str) -> DataError:
    return DataError(f"{fname} row {i + 1}: {msg}")


def _is_empty(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, str):
        return v.strip() == ""
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _parse_number(s: pd.Series, fname: str, col: Column) -> np.ndarray:
    """Numeric column -> float64 (int64 for int columns); exact for CSV text
    (Python's float parser), with the first bad row named on failure."""
    if pd.api.types.is_bool_dtype(s.dtype):
        raise DataError(f"{fname}: column {col.name!r} is boolean, not a number")
    if pd.api.types.is_numeric_dtype(s.dtype):
        vals = s.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        obj = s.to_numpy(dtype=object)
        try:
            vals = np.array(
                [float("nan") if isinstance(v, str) and not v.strip() else v for v in obj],
                dtype=np.float64,
            )
        except (TypeError, ValueError):
            for i, v in enumerate(obj):
                if _is_empty(v):
                    continue
                try:
                    float(v)
                except (TypeError, ValueError):
                    raise _row_error(
                        fname, i, f"column {col.name!r} is {v!r}, not a number"
                    ) from None
            raise  # unreachable: some element failed above
    bad = np.isnan(vals)
    if not col.nullable and bad.any():
        i = int(np.argmax(bad))
        raw = s.iloc[i]
        what = "empty" if isinstance(raw, str) and not raw.strip() else "NaN"
        raise _row_error(fname, i, f"column {col.name!r} is {what}")
    inf = np.isinf(vals)
    if inf.any():
        i = int(np.argmax(inf))
        raise _row_error(fname, i, f"column {col.name!r} is {_fmt(vals[i])}, not finite")
    if col.type == "int":
        frac = ~bad & (vals != np.floor(np.where(bad, 0.0, vals)))
        if frac.any():
            i = int(np.argmax(frac))
            raise _row_error(fname, i, f"column {col.name!r} is {_fmt(vals[i])}, not an integer")
        return vals.astype(np.int64)
    return vals


def _parse_symbol(s: pd.Series, fname: str) -> np.ndarray:
    obj = s.to_numpy(dtype=object)
    empty = np.array([_is_empty(v) for v in obj], dtype=bool)
    if empty.any():
        raise _row_error(fname, int(np.argmax(empty)), "column 'symbol' is empty")
    return np.array([str(v).strip() for v in obj], dtype=object)


def _parse_side(s: pd.Series, fname: str) -> np.ndarray:
    obj = s.to_numpy(dtype=object)
    out = np.empty(len(obj), dtype=np.int8)
    for i, v in enumerate(obj):
        key = str(int(v)) if isinstance(v, (int, np.integer, float)) and v == v else str(v)
        side = _SIDES.get(key.strip().lower())
        if side is None:
            what = "empty" if _is_empty(v) else repr(v)
            raise _row_error(fname, i, f"column 'side' is {what}, expected B/A (or buy/sell, 1/-1)")
        out[i] = side
    return out


def parse_ts(s: pd.Series, fname: str, col: str = "ts") -> np.ndarray:
    """Timestamps -> int64 ms since epoch (UTC). Accepts int ms, ISO-8601 text
    (naive = UTC) and pandas datetimes; names the first unparsable row, and the
    first outside [2015-01-01, a day from now] with the unit it looks like."""
    ms = _parse_ts(s, fname, col)
    _check_ts_range(ms, s, fname, col)
    return ms


def _iso(ms: int) -> str:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").isoformat()


def _ts_unit_hint(v: float, hi: float) -> str:
    """What an out-of-range int timestamp probably is (read as milliseconds)."""
    for factor, unit, fix in ((1e3, "seconds", "multiply by 1000"), (1e-3, "microseconds", "divide by 1000"),
                              (1e-6, "nanoseconds", "divide by 1,000,000")):
        if MIN_TS_MS <= v * factor <= hi:
            return f": it looks like {unit} since epoch ({fix})"
    return ""


def _check_ts_range(ms: np.ndarray, s: pd.Series, fname: str, col: str) -> None:
    hi = time.time() * 1000 + FUTURE_MARGIN_MS
    bad = (ms < MIN_TS_MS) | (ms > hi)
    if not bad.any():
        return
    i = int(np.argmax(bad))
    raw, v = s.iloc[i], int(ms[i])
    if hasattr(raw, "isoformat"):
        shown, numeric = repr(raw.isoformat()), False
    elif isinstance(raw, str):
        shown, numeric = repr(raw), raw.strip().lstrip("-").isdigit()
    else:  # an int or float column of Parquet
        shown, numeric = str(int(raw)), True
    if v < 0:
        raise _row_error(fname, i, f"column {col!r} is {shown}, negative (a time is ms since 1970-01-01 UTC)")
    why = f"before {_iso(MIN_TS_MS)[:10]}" if v < MIN_TS_MS else "more than a day in the future"
    if numeric:
        why += f" read as milliseconds{_ts_unit_hint(float(v), hi)}"
    raise _row_error(fname, i, f"column {col!r} is {shown}, {why}")


def _parse_ts(s: pd.Series, fname: str, col: str) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        if s.isna().any():
            raise _row_error(fname, int(np.argmax(s.isna().to_numpy())), f"column {col!r} is empty")
        dt = s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
        return pd.DatetimeIndex(dt).as_unit("ms").asi8.copy()
    if pd.api.types.is_integer_dtype(s.dtype):
        if s.dtype == np.uint64 and len(s) and int(s.max()) > _INT64_MAX:
            i = int(np.argmax(s.to_numpy() > _INT64_MAX))
            raise _row_error(fname, i, f"column {col!r} is {int(s.iloc[i])}, too large for a timestamp")
        return s.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64)
        bad = np.isnan(v) | (v != np.floor(np.nan_to_num(v)))
        if bad.any():
            i = int(np.argmax(bad))
            what = "empty" if np.isnan(v[i]) else f"{_fmt(v[i])}, not an integer ms timestamp"
            raise _row_error(fname, i, f"column {col!r} is {what}")
        big = np.abs(v) > _INT64_MAX
        if big.any():
            i = int(np.argmax(big))
            raise _row_error(fname, i, f"column {col!r} is {_fmt(v[i])}, too large for a timestamp")
        return v.astype(np.int64)
    obj = np.array([str(x).strip() if x is not None else "" for x in s.to_numpy(dtype=object)])
    empty = obj == ""
    if empty.any():
        raise _row_error(fname, int(np.argmax(empty)), f"column {col!r} is empty")
    digits = np.char.isdigit(np.char.lstrip(obj.astype(str), "-"))
    out = np.empty(len(obj), dtype=np.int64)
    if digits.any():
        try:
            out[digits] = obj[digits].astype(np.int64)
        except OverflowError:
            i = next(i for i in np.flatnonzero(digits) if abs(int(obj[i])) > _INT64_MAX)
            raise _row_error(fname, int(i), f"column {col!r} is {str(obj[i])!r}, too large for a timestamp "
                                            "(int ms since epoch)") from None
    rest = ~digits
    if rest.any():
        parsed = pd.to_datetime(pd.Series(obj[rest]), utc=True, format="ISO8601", errors="coerce")
        nat = parsed.isna().to_numpy()
        if nat.any():
            i = int(np.flatnonzero(rest)[np.argmax(nat)])
            raise _row_error(
                fname,
                i,
                f"column {col!r} is {str(obj[i])!r}, not a timestamp "
                "(int ms since epoch or ISO-8601)",
            )
        out[rest] = pd.DatetimeIndex(parsed).as_unit("ms").asi8
    return out


def _fmt(v: float) -> str:
    return repr(float(v))


def _check_values(out: dict[str, np.ndarray], schema: StreamSchema, fname: str) -> None:
    """Range checks; of all violations the one in the earliest row is reported."""
    errs: list[tuple[int, str]] = []

    def first(mask: np.ndarray, msg) -> None:
        if mask.any():
            i = int(np.argmax(mask))
            errs.append((i, msg(i)))

    for col in schema.columns:
        v = out.get(col.name)
        if v is None:
            continue
        name = col.name
        hi = col.limit
        if hi is not None and v.dtype.kind == "f":
            first(np.abs(v) > hi, lambda i, v=v, n=name, hi=hi: f"column {n!r} is {_fmt(v[i])}, beyond the "
                  f"sanity bound {hi:g} (absolute value)")
        if col.type == "price":
            first(v <= 0, lambda i, v=v, n=name: f"column {n!r} is {_fmt(v[i])}, must be > 0")
        elif col.type == "size" and col.positive:
            first(v <= 0, lambda i, v=v, n=name: f"column {n!r} is {_fmt(v[i])}, must be > 0")
        elif col.type == "size":
            first(v < 0, lambda i, v=v, n=name: f"column {n!r} is {_fmt(v[i])}, must be >= 0")
        elif col.type == "int":
            first(v < 0, lambda i, v=v, n=name: f"column {n!r} is {v[i]}, must be >= 0")
    if schema.name == "candles":
        o, h, lo, c = out["open"], out["high"], out["low"], out["close"]
        first(h < lo, lambda i: f"column 'high' is {_fmt(h[i])}, below 'low' {_fmt(lo[i])}")
        for name, x in (("open", o), ("close", c)):
            first(
                (h >= lo) & ((x < lo) | (x > h)),
                lambda i, x=x, n=name: (
                    f"column {n!r} is {_fmt(x[i])}, outside [low, high] = "
                    f"[{_fmt(lo[i])}, {_fmt(h[i])}]"
                ),
            )
    if schema.name == "bbo":
        b, a = out["bid_px"], out["ask_px"]
        first(a <= b, lambda i: f"column 'ask_px' is {_fmt(a[i])}, not above 'bid_px' {_fmt(b[i])}")
    if schema.name == "l2":
        for side in ("bid", "ask"):
            px, sz = out[f"{side}_px"], out[f"{side}_sz"]
            first(
                ~np.isnan(px) & np.isnan(sz),
                lambda i, s=side: f"column '{s}_sz' is empty but '{s}_px' is set",
            )
            first(
                ~np.isnan(px) & (sz <= 0),
                lambda i, s=side, sz=sz: f"column '{s}_sz' is {_fmt(sz[i])} but '{s}_px' is set: must be > 0",
            )
        _check_book(out, first)
    if errs:
        i, msg = min(errs, key=lambda e: e[0])
        raise _row_error(fname, i, msg)


def _check_book(out: dict[str, np.ndarray], first) -> None:
    """Within each (ts, symbol) snapshot: no bid at or above an ask (a crossed book), bids
    falling and asks rising with the level."""
    df = pd.DataFrame({"ts": out["ts"], "symbol": out["symbol"], "level": out["level"],
                       "bid": out["bid_px"], "ask": out["ask_px"]})
    g = df.groupby(["ts", "symbol"], sort=False)
    best_bid, best_ask = g["bid"].transform("max").to_numpy(), g["ask"].transform("min").to_numpy()
    bid, ask = out["bid_px"], out["ask_px"]
    first(ask <= best_bid, lambda i: f"column 'ask_px' is {_fmt(ask[i])}, at or below the best bid "
          f"{_fmt(best_bid[i])} of the same book (crossed)")
    first(bid >= best_ask, lambda i: f"column 'bid_px' is {_fmt(bid[i])}, at or above the best ask "
          f"{_fmt(best_ask[i])} of the same book (crossed)")
    order = np.lexsort((out["level"], pd.factorize(out["symbol"])[0], out["ts"]))
    same = np.zeros(len(order), dtype=bool)
    if len(order) > 1:
        same[1:] = (np.diff(out["ts"][order]) == 0) & (out["symbol"][order][1:] == out["symbol"][order][:-1])
    for side, wrong in (("bid", np.greater_equal), ("ask", np.less_equal)):
        px = out[f"{side}_px"][order]
        prev = np.full(len(px), np.nan)
        prev[1:] = px[:-1]
        bad_sorted = same & wrong(px, prev)  # NaN (an absent level) compares False
        bad = np.zeros(len(px), dtype=bool)
        bad[order] = bad_sorted
        prev_file = np.full(len(px), np.nan)
        prev_file[order] = prev
        word = "below" if side == "bid" else "above"
        first(bad, lambda i, s=side, p=out[f"{side}_px"], q=prev_file, w=word: (
            f"column '{s}_px' is {_fmt(p[i])} at level {out['level'][i]}, not {w} the level before "
            f"({_fmt(q[i])})"))


def _check_duplicates(out: dict[str, np.ndarray], schema: StreamSchema, fname: str) -> None:
    if not schema.key:
        return
    df = pd.DataFrame({k: out[k] for k in schema.key})
    dup = df.duplicated(keep="first").to_numpy()
    if not dup.any():
        return
    i = int(np.argmax(dup))
    same = np.ones(len(df), dtype=bool)
    for k in schema.key:
        same &= out[k] == out[k][i]
    j = int(np.argmax(same))
    vals = []
    for k in schema.key:
        v = out[k][i]
        v = v.item() if isinstance(v, np.generic) else v
        vals.append(pd.Timestamp(int(v), unit="ms", tz="UTC").isoformat() if k == "ts" else repr(v))
    raise _row_error(
        fname,
        i,
        f"duplicate ({', '.join(schema.key)}) = ({', '.join(vals)}), first at row {j + 1}",
    )


def infer_interval(ts: np.ndarray, symbol: np.ndarray) -> int:
    """The dominant spacing: the most common positive step between consecutive bars of
    the same symbol (60000 if none; the smaller step on a tie). Not the smallest step:
    one bar a second off the grid would make that 1 s, and every bar's close would be
    stamped (and seen) 59 s before it happened."""
    if len(ts) < 2:
        return 60_000
    codes, _ = pd.factorize(symbol)
    order = np.lexsort((ts, codes))
    t, c = ts[order], codes[order]
    d = np.diff(t)
    ok = (np.diff(c) == 0) & (d > 0)
    if not ok.any():
        return 60_000
    steps, counts = np.unique(d[ok], return_counts=True)
    return int(steps[np.argmax(counts)])


def off_grid(ts: np.ndarray, symbol: np.ndarray, interval_ms: int) -> np.ndarray:
    """Bars (file order) off their symbol's grid: ``ts`` not congruent, modulo the
    interval, to the phase most of that symbol's bars share. Missing bars (a step that is
    a multiple of the interval) are gaps, not irregular."""
    if not len(ts):
        return np.zeros(0, dtype=bool)
    codes, _ = pd.factorize(symbol)
    phase = np.asarray(ts, dtype=np.int64) % int(interval_ms)
    n = pd.DataFrame({"c": codes, "p": phase}).value_counts().reset_index()  # columns c, p, count
    n = n.sort_values(["c", "count", "p"], ascending=[True, False, True]).drop_duplicates("c")
    common = np.empty(int(codes.max()) + 1, dtype=np.int64)
    common[n["c"].to_numpy()] = n["p"].to_numpy()
    return phase != common[codes]


# ----------------------------------------------------------------------------- to arrays
def _to_array(
    fr: dict[str, np.ndarray], schema: StreamSchema, table: list[str], candle_shift: int
) -> np.ndarray:
    index = {s: i for i, s in enumerate(table)}
    sym = np.array([index.get(s, -1) for s in fr["symbol"]], dtype=np.int64)
    keep = sym >= 0
    fr = {k: v[keep] for k, v in fr.items()}
    sym = sym[keep]
    ts = fr["ts"] + (candle_shift if schema.kind == MarketKind.CANDLE else 0)
    recv = fr["ts_recv"] if "ts_recv" in fr else ts
    dt = MARKET_DTYPES[schema.kind]
    if schema.kind == MarketKind.L2:
        return _l2_wide(fr, ts, recv, sym)
    a = np.zeros(len(ts), dtype=dt)
    a["ts_exch"], a["ts_recv"], a["sym"] = ts, recv, sym
    for name in dt.names[3:]:
        a[name] = fr[name]
    return a[np.lexsort((a["sym"], a["ts_exch"]))]


def _l2_wide(fr: dict[str, np.ndarray], ts: np.ndarray, recv: np.ndarray, sym: np.ndarray):
    """Long-format L2 rows -> one snapshot row per (ts, symbol), levels padded."""
    dt = MARKET_DTYPES[MarketKind.L2]
    lvl = fr["level"]
    m = lvl < L2_DEPTH
    ts, recv, sym, lvl = ts[m], recv[m], sym[m], lvl[m]
    cols = {k: fr[k][m] for k in ("bid_px", "bid_sz", "ask_px", "ask_sz")}
    order = np.lexsort((lvl, sym, ts))
    ts, recv, sym, lvl = ts[order], recv[order], sym[order], lvl[order]
    new = np.ones(len(ts), dtype=bool)
    new[1:] = (np.diff(ts) != 0) | (np.diff(sym) != 0)
    snap = np.cumsum(new) - 1
    a = np.zeros(int(new.sum()), dtype=dt)
    a["ts_exch"], a["ts_recv"], a["sym"] = ts[new], recv[new], sym[new]
    for k, v in cols.items():
        grid = np.full((len(a), L2_DEPTH), np.nan if k.endswith("px") else 0.0)
        val = v[order]
        if k.endswith("sz"):
            val = np.nan_to_num(val, nan=0.0)
        grid[snap, lvl] = val
        a[k] = grid
    return a


# ----------------------------------------------------------------------------- writing
def write_files(
    md: MarketData,
    directory: str | Path,
    fmt: Literal["csv", "parquet"] = "csv",
    candle_ts: Literal["open", "close"] = "open",
) -> Path:
    """Write ``md`` in the user file format (the inverse of ``load_files``):
    int-ms ``ts`` and ``ts_recv``, ``symbol`` names, L2 in long format.
    Useful to export data for other tools and to test the loader."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    syms = np.array(md.symbols, dtype=object)
    for kind, a in md.arrays().items():
        stem = STREAMS[kind]
        if not len(a) and stem != "candles":
            continue
        ts = a["ts_exch"].copy()
        if kind == MarketKind.CANDLE and candle_ts == "open":
            ts -= md.interval_ms
        if kind == MarketKind.L2:
            n = len(a)
            lv = np.tile(np.arange(L2_DEPTH), n)
            cols: dict[str, Any] = {
                "ts": np.repeat(ts, L2_DEPTH),
                "symbol": np.repeat(syms[a["sym"]] if n else syms[:0], L2_DEPTH),
                "level": lv,
            }
            for k in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
                cols[k] = a[k].ravel()
            cols["ts_recv"] = np.repeat(a["ts_recv"], L2_DEPTH)
            df = pd.DataFrame(cols)
            df = df[~(np.isnan(df["bid_px"]) & np.isnan(df["ask_px"]))]
        else:
            cols = {"ts": ts, "symbol": syms[a["sym"]] if len(a) else syms[:0]}
            for name in a.dtype.names[3:]:
                col = a[name]
                if kind == MarketKind.TRADE and name == "side":
                    col = np.where(col > 0, "B", "A")
                cols[name] = col
            cols["ts_recv"] = a["ts_recv"]
            df = pd.DataFrame(cols)
        if fmt == "csv":
            df.to_csv(d / f"{stem}.csv", index=False)
        elif fmt == "parquet":
            df.to_parquet(d / f"{stem}.parquet", index=False, compression="zstd")
        else:
            raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    return d
