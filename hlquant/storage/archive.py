"""Hyperliquid's public archives read as they really are (docs/data.md has the facts).

``read_archive(paths)`` reads local archive files (LZ4 frame or plain; files or
folders, e.g. the cache ``hlquant record fetch`` fills) and returns the
columnar history a backtest runs on, the asset contexts kept as signals, and
the trade details; ``import_archive`` writes them to PostgreSQL and/or a
history folder. Which archive a file belongs to is read from its path (the
buckets' layout) or, failing that, from its first line:

- ``asset_ctxs/{YYYYMMDD}.csv.lz4``: one row per coin per minute. ``time`` is
  ISO 8601 with ``Z`` or ``2025-10-24 20:00:00.000`` (UTC); empty fields and the
  string ``null`` become NaN, 0.0 prices of illiquid coins too, all counted.
  Rows off the minute grid are stamped at the next minute boundary (never
  earlier than their own time); when that minute already has a row the later
  one is dropped and counted as a collision. Funding becomes one FUNDING event
  per coin and hour (the rate of the hour's last minute, stamped at the hour),
  the mark price one MARK event per minute; every field goes to the signals.
- ``market_data/{YYYYMMDD}/{H}/l2Book/{coin}.lz4``: L2 snapshots.
- ``node_trades/hourly/{YYYYMMDD}/{H}``: each trade is written twice, a ``"B"``
  and an ``"A"`` line with the same content; ``side_info`` is ``[buyer,
  seller]`` and carries no taker flag, so the aggressor is the order placed
  later (larger oid: a resting maker existed before the order that crossed
  it). One trade = (coin, time, hash, px, sz, buyer oid, seller oid): a taker
  order sweeping several makers shares one hash across several trades.
  ``trade_dir_override`` ``LiquidatedMarket`` marks a liquidation.
- ``node_fills/hourly/...`` (``[user, fill]`` lines) and
  ``node_fills_by_block/hourly/...`` (``{"events": [[user, fill], ...]}`` per
  block): a fill per counterparty; the taker's (``crossed``) is the trade.
  Fills without ``tid`` (older data) are identified by their own fields.

Hourly node files hold what was processed in that hour, so a fill near the
boundary can sit in the neighbouring hour's file: for every hourly file read,
the neighbouring hours' files beside it are read too and every record is
kept iff its own time is inside a requested hour. Everything dropped (the
second side of a trade, a repeat, a record of an hour not asked for, an
off-grid collision) is counted in ``ImportReport``, never silently.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hlquant.core.errors import DataError
from hlquant.core.events import L2_DEPTH, MARKET_DTYPES, BookSnapshot, MarketKind
from hlquant.data.candles import merge_candles, mid_candles, trade_candles
from hlquant.data.market import STREAMS, MarketData
from hlquant.data.signals import (
    ASSET_CTX_FIELDS,
    PRICE_FIELDS,
    empty_frame,
    load_asset_ctxs,
    save_asset_ctxs,
)

log = logging.getLogger(__name__)

MINUTE_NS = 60_000_000_000
HOUR_MS = 3_600_000
FUNDING_LOOKBACK_MS = 5 * 60_000
"""A settlement hour's rate is the last asset-ctx row of the hour within this window."""
DERIVED_TID_BIT = 1 << 62
"""Trades without an exchange tid get ``DERIVED_TID_BIT | hash(identity)`` (exchange tids are far smaller)."""
TRADES_FILE = "archive_trades.parquet"
_LZ4_MAGIC = b"\x04\x22\x4d\x18"
_MAX_BAD_KEPT = 1000


class Dataset(StrEnum):
    ASSET_CTXS = "asset_ctxs"
    L2BOOK = "l2book"
    NODE_TRADES = "node_trades"
    NODE_FILLS = "node_fills"
    NODE_FILLS_BY_BLOCK = "node_fills_by_block"


HOURLY = (Dataset.NODE_TRADES, Dataset.NODE_FILLS, Dataset.NODE_FILLS_BY_BLOCK)


@dataclass
class ImportReport:
    """What an import read, kept and dropped (every drop has a counter)."""

    files: int = 0
    neighbour_files: int = 0  # hourly files read only for records spilling into a requested hour
    lines: int = 0
    bad_lines: list[tuple[str, int, str]] = field(default_factory=list)  # (file, line, reason), first 1000
    n_bad: int = 0
    unknown_files: list[str] = field(default_factory=list)
    # asset_ctxs
    ctx_rows: int = 0
    ctx_duplicates: int = 0  # the same (coin, time) read again (overlapping files): later one dropped
    ctx_off_grid: int = 0  # rows whose time is not on the minute grid
    ctx_off_grid_kept: int = 0  # ... stamped at the next minute, which had no on-grid row
    ctx_collisions: int = 0  # rows dropped because their minute already had a row
    ctx_empty: dict[str, int] = field(default_factory=dict)  # per field: empty strings
    ctx_null: dict[str, int] = field(default_factory=dict)  # per field: the string "null"
    ctx_zero_price: dict[str, int] = field(default_factory=dict)  # per price field: 0.0 -> NaN
    ctx_invalid: dict[str, int] = field(default_factory=dict)  # per field: not a number -> NaN
    mark_missing: int = 0  # minutes without a usable mark price (no MARK event)
    funding_events: int = 0
    funding_hours_missing: int = 0  # hours with rows, none in the last FUNDING_LOOKBACK_MS: no event
    # trades and fills
    trade_lines: int = 0  # trade / fill records read (inside the requested coins)
    trades: int = 0  # distinct trades kept
    counterparty_lines: int = 0  # the other side of a trade already counted (B/A twin, maker fill)
    repeated: int = 0  # a trade read again (overlapping files)
    spill_in: int = 0  # trades of a requested hour found in a neighbouring hour's file
    spill_out: int = 0  # records of an hour not requested, dropped
    liquidations: int = 0
    no_tid: int = 0  # trades identified by a derived id (node_trades, fills without tid)
    taker_missing: int = 0  # fills whose taker side was never read: side taken from the maker
    # output
    l2_snapshots: int = 0
    trade_candles: int = 0
    mid_candles: int = 0
    events: int = 0
    inserted: dict[str, int] = field(default_factory=dict)

    @property
    def duplicates(self) -> int:
        """Trade lines and asset-ctx rows dropped as duplicates of something already kept."""
        return self.counterparty_lines + self.repeated + self.ctx_duplicates

    def bad(self, file: str, line: int, reason: str) -> None:
        self.n_bad += 1
        if len(self.bad_lines) < _MAX_BAD_KEPT:
            self.bad_lines.append((file, line, reason))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["duplicates"] = self.duplicates
        d["bad_lines"] = [list(b) for b in self.bad_lines[:20]]
        return d


@dataclass
class ArchiveData:
    market: MarketData  # candles, trades, l2, funding, mark
    asset_ctxs: pd.DataFrame  # hlquant.data.signals layout
    trades: pd.DataFrame  # per trade: ts_ns, symbol, side, px, sz, tid, hash, taker_oid, maker_oid, liquidation, dir_override, source


# ----------------------------------------------------------------------------- files
@dataclass(frozen=True)
class ArchiveFile:
    path: Path
    dataset: Dataset
    hour_ms: int | None = None  # start of the hour an hourly node file holds


_DATE = re.compile(r"^\d{8}$")


def _hour_of(path: Path) -> int | None:
    """``.../{YYYYMMDD}/{H}[.lz4]`` -> the hour's start in ms (None if not that layout)."""
    stem = path.name.split(".")[0]
    if not (stem.isdigit() and 0 <= int(stem) <= 23 and _DATE.match(path.parent.name)):
        return None
    d = path.parent.name
    return calendar.timegm((int(d[:4]), int(d[4:6]), int(d[6:]), int(stem), 0, 0)) * 1000


def classify(path: Path) -> ArchiveFile | None:
    parts = path.parts
    for ds in (Dataset.NODE_FILLS_BY_BLOCK, Dataset.NODE_FILLS, Dataset.NODE_TRADES):
        if ds.value in parts:
            return ArchiveFile(path, ds, _hour_of(path))
    if "l2Book" in parts:
        return ArchiveFile(path, Dataset.L2BOOK)
    if "asset_ctxs" in parts or path.name.endswith((".csv.lz4", ".csv")):
        return ArchiveFile(path, Dataset.ASSET_CTXS)
    kind = sniff(path)
    return ArchiveFile(path, kind) if kind else None


def _open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == _LZ4_MAGIC:
        import lz4.frame

        return lz4.frame.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def sniff(path: Path) -> Dataset | None:
    """The archive a file of unknown layout holds, from its first line."""
    try:
        with _open_text(path) as f:
            first = f.readline().strip()
    except (OSError, RuntimeError, UnicodeDecodeError):
        return None
    if first.startswith("time,coin,"):
        return Dataset.ASSET_CTXS
    try:
        obj = json.loads(first)
    except ValueError:
        return None
    if isinstance(obj, dict) and "raw" in obj:
        return Dataset.L2BOOK
    if isinstance(obj, dict) and "events" in obj:
        return Dataset.NODE_FILLS_BY_BLOCK
    if isinstance(obj, dict) and "side_info" in obj:
        return Dataset.NODE_TRADES
    if isinstance(obj, list) and len(obj) == 2 and isinstance(obj[1], dict):
        return Dataset.NODE_FILLS
    return None


def find_files(paths: Iterable[str | Path], report: ImportReport) -> list[ArchiveFile]:
    out: dict[Path, ArchiveFile] = {}
    for p in paths:
        p = Path(p).expanduser()
        if not p.exists():
            raise DataError(f"{p}: no such file or directory")
        files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
        for f in files:
            if f.name.endswith(".part"):
                continue  # an unfinished download
            af = classify(f)
            if af is None:
                report.unknown_files.append(str(f))
            else:
                out[f.resolve()] = ArchiveFile(f.resolve(), af.dataset, af.hour_ms)
    return list(out.values())


def _neighbour(af: ArchiveFile, delta_h: int) -> Path | None:
    if af.hour_ms is None:
        return None
    t = af.hour_ms + delta_h * HOUR_MS
    ts = pd.Timestamp(t, unit="ms", tz="UTC")
    p = af.path.parent.parent / f"{ts:%Y%m%d}" / (str(ts.hour) + "".join(af.path.suffixes))
    return p if p.is_file() else None


# ----------------------------------------------------------------------------- times
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$")


def parse_time_ns(v: Any) -> int:
    """An archive time -> int ns since the epoch, exactly (no float on the way).

    Accepts int/float ms, digit strings (ms), and ISO 8601 with up to nine
    fractional digits, ``T`` or a space, ``Z``, an offset, or nothing (= UTC)."""
    if isinstance(v, bool):
        raise ValueError(f"time {v!r} is not a timestamp")
    if isinstance(v, (int, np.integer)):
        return int(v) * 1_000_000
    if isinstance(v, float):
        if v != v:
            raise ValueError("time is NaN")
        return int(round(v * 1_000_000))
    s = str(v).strip()
    if s.isdigit():
        return int(s) * 1_000_000
    m = _ISO.match(s)
    if m is None:
        raise ValueError(f"time {s!r} is not ISO 8601 or ms")
    y, mo, d, h, mi, se, frac, tz = m.groups()
    secs = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(se)))
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        hh, mm = int(tz[1:3]), int(tz[-2:])
        secs -= sign * (hh * 3600 + mm * 60)
    return secs * 1_000_000_000 + int((frac or "").ljust(9, "0"))


def parse_times_ns(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized ``parse_time_ns`` for a text column: (ns int64, ok mask)."""
    txt = s.astype(str).str.strip()
    naive = txt.str.replace(r"Z$", "", regex=True).str.replace(" ", "T", n=1, regex=False)
    plain = naive.str.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?")
    out = np.zeros(len(txt), np.int64)
    ok = plain.to_numpy(dtype=bool, copy=True)
    if ok.any():
        parsed = pd.to_datetime(naive[ok], format="ISO8601")
        out[ok] = pd.DatetimeIndex(parsed).as_unit("ns").asi8
    for i in np.flatnonzero(~ok):  # rare shapes (ms digits, offsets) one by one
        try:
            v = parse_time_ns(txt.iloc[i])
        except ValueError:
            continue
        out[i], ok[i] = v, True
    return out, ok


# ----------------------------------------------------------------------------- asset_ctxs
def read_asset_ctxs(af: ArchiveFile, coins: set[str] | None, rep: ImportReport) -> pd.DataFrame:
    """One asset_ctxs file -> ``ts_ns, symbol, <fields>`` (NaN for absent values), counted."""
    name = af.path.name
    with _open_text(af.path) as f:
        df = pd.read_csv(f, dtype=str, keep_default_na=False, na_filter=False)
    df.columns = [str(c).strip() for c in df.columns]
    want = ["time", "coin", *ASSET_CTX_FIELDS]
    missing = [c for c in want if c not in df.columns]
    if missing:
        rep.bad(name, 1, f"asset_ctxs header lacks {missing} (have {list(df.columns)})")
        return pd.DataFrame()
    df["line"] = np.arange(2, len(df) + 2)
    rep.lines += len(df)
    if coins is not None:
        df = df[df["coin"].isin(coins)]
    rep.ctx_rows += len(df)
    ts, ok = parse_times_ns(df["time"])
    for i in np.flatnonzero(~ok):
        rep.bad(name, int(df["line"].iloc[i]), f"time {df['time'].iloc[i]!r} is not a timestamp")
    out = pd.DataFrame({"ts_ns": ts[ok], "symbol": df["coin"].to_numpy(dtype=object)[ok]})
    for c in ASSET_CTX_FIELDS:
        raw = df[c].str.strip()[ok]
        empty = (raw == "").to_numpy()
        null = (raw.str.lower() == "null").to_numpy()
        vals = pd.to_numeric(raw.mask(empty | null), errors="coerce").to_numpy(dtype=np.float64, copy=True)
        invalid = np.isnan(vals) & ~empty & ~null
        for counter, mask in ((rep.ctx_empty, empty), (rep.ctx_null, null), (rep.ctx_invalid, invalid)):
            if mask.any():
                counter[c] = counter.get(c, 0) + int(mask.sum())
        if invalid.any():
            i = int(np.argmax(invalid))
            rep.bad(name, int(df["line"].to_numpy()[ok][i]), f"{c} {raw.iloc[i]!r} is not a number")
        if c in PRICE_FIELDS:
            zero = vals == 0.0
            if zero.any():
                rep.ctx_zero_price[c] = rep.ctx_zero_price.get(c, 0) + int(zero.sum())
                vals[zero] = np.nan
        out[c] = vals
    return out


def normalize_asset_ctxs(frames: list[pd.DataFrame], rep: ImportReport) -> pd.DataFrame:
    """Rows of every file -> one row per (symbol, minute): duplicates and off-grid collisions
    dropped (on-grid rows win; among off-grid rows the latest), all counted."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_frame()
    f = pd.concat(frames, ignore_index=True)
    dup = f.duplicated(["symbol", "ts_ns"], keep="first")
    rep.ctx_duplicates += int(dup.sum())
    f = f[~dup]
    ts = f["ts_ns"].to_numpy()
    on_grid = ts % MINUTE_NS == 0
    rep.ctx_off_grid += int((~on_grid).sum())
    grid_ms = -(-ts // MINUTE_NS) * 60_000  # the next minute boundary at or after the row's time
    f = f.assign(ts_exch=grid_ms, ts_src=ts // 1_000_000, on_grid=on_grid)
    f = f.sort_values(["symbol", "ts_exch", "on_grid", "ts_ns"], ascending=[True, True, False, False],
                      kind="stable")
    coll = f.duplicated(["symbol", "ts_exch"], keep="first")
    rep.ctx_collisions += int(coll.sum())
    f = f[~coll]
    rep.ctx_off_grid_kept += int((~f["on_grid"]).sum())
    cols = ["ts_exch", "ts_src", "symbol", *ASSET_CTX_FIELDS]
    return f[cols].sort_values(["ts_exch", "symbol"], kind="stable").reset_index(drop=True)


def funding_from_ctxs(ctx: pd.DataFrame, rep: ImportReport) -> pd.DataFrame:
    """One settlement per coin and hour: the ``funding`` of the hour's last row within
    ``FUNDING_LOOKBACK_MS`` before the hour, stamped at the hour (rate, premium, oracle)."""
    out = []
    for sym, g in ctx.groupby("symbol", sort=True):
        g = g[~np.isnan(g["funding"].to_numpy())]
        if not len(g):
            continue
        t = g["ts_exch"].to_numpy()
        hour_end = t // HOUR_MS * HOUR_MS + HOUR_MS  # the next settlement after the row
        near = hour_end - t <= FUNDING_LOOKBACK_MS
        sel = g[near].assign(H=hour_end[near]).drop_duplicates("H", keep="last")
        # hours with data but no row near their end (a hole in the archive, not silence)
        rep.funding_hours_missing += int((~np.isin(np.unique(hour_end), sel["H"].to_numpy())).sum())
        out.append(pd.DataFrame({"ts": sel["H"].to_numpy(), "symbol": sym, "rate": sel["funding"].to_numpy(),
                                 "premium": sel["premium"].to_numpy(), "oracle_px": sel["oracle_px"].to_numpy()}))
    f = pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=["ts", "symbol", "rate", "premium",
                                                                             "oracle_px"])
    rep.funding_events += len(f)
    return f


# ----------------------------------------------------------------------------- trades and fills
def _derived_tid(*parts: Any) -> int:
    h = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return DERIVED_TID_BIT | (int.from_bytes(h, "big") & (DERIVED_TID_BIT - 1))


class _TradeSink:
    """Distinct trades, keyed by their identity; counts what it drops."""

    COLS = ("ts_ns", "symbol", "side", "px", "sz", "tid", "hash", "taker_oid", "maker_oid", "liquidation",
            "dir_override", "source")

    def __init__(self, rep: ImportReport, windows: set[int] | None) -> None:
        self.rep = rep
        self.windows = windows
        self.rows: list[list[Any]] = []
        self.index: dict[tuple, int] = {}  # key -> row
        self.first_side: dict[tuple, str] = {}
        self.makers: dict[tuple, list[Any]] = {}  # tid fills seen only from the maker so far

    def inside(self, t_ns: int) -> bool:
        return self.windows is None or (t_ns // 1_000_000 // HOUR_MS * HOUR_MS) in self.windows

    def node_trade(self, o: dict, src: str, neighbour: bool) -> None:
        t = parse_time_ns(o["time"])
        if not self.inside(t):
            self.rep.spill_out += 0 if neighbour else 1
            return
        buyer, seller = o["side_info"][0], o["side_info"][1]
        boid, soid = int(buyer["oid"]), int(seller["oid"])
        key = ("T", o["coin"], t, o["hash"], o["px"], o["sz"], boid, soid)
        if key in self.index:
            if self.first_side[key] != o.get("side"):
                self.rep.counterparty_lines += 1
            else:
                self.rep.repeated += 1
            return
        self.first_side[key] = o.get("side")
        buyer_takes = boid > soid  # the later order crossed the resting one
        override = str(o.get("trade_dir_override", "Na"))
        liq = override == "LiquidatedMarket" or bool(o.get("liquidation"))
        self._add(key, [t, o["coin"], 1 if buyer_takes else -1, float(o["px"]), float(o["sz"]),
                        _derived_tid(*key[1:]), o["hash"], boid if buyer_takes else soid,
                        soid if buyer_takes else boid, liq, override, src], neighbour, derived=True)

    def fill(self, f: dict, src: str, neighbour: bool) -> None:
        t = parse_time_ns(f["time"])
        if not self.inside(t):
            self.rep.spill_out += 0 if neighbour else 1
            return
        tid = f.get("tid")
        key = ("F", f["coin"], int(tid)) if tid is not None else (
            "F", f["coin"], t, f.get("hash"), int(f["oid"]), f["px"], f["sz"], f.get("startPosition"))
        crossed = bool(f.get("crossed", True))
        side = 1 if f["side"] == "B" else -1
        if not crossed:  # the maker's fill of a trade: its taker fill is the trade
            self.rep.counterparty_lines += 1
            if key in self.index:
                self.rows[self.index[key]][8] = int(f["oid"])
            elif tid is not None:
                self.makers.setdefault(key, [t, f["coin"], -side, float(f["px"]), float(f["sz"]), int(tid),
                                             f.get("hash", ""), 0, int(f["oid"]), bool(f.get("liquidation")),
                                             "", src, neighbour])
            return
        if key in self.index:
            self.rep.repeated += 1
            return
        maker = self.makers.pop(key, None)
        liq = bool(f.get("liquidation")) or (maker is not None and maker[9])
        self._add(key, [t, f["coin"], side, float(f["px"]), float(f["sz"]),
                        int(tid) if tid is not None else _derived_tid(*key[1:]), f.get("hash", ""),
                        int(f["oid"]), maker[8] if maker else 0, liq, "", src], neighbour, derived=tid is None)

    def _add(self, key: tuple, row: list[Any], neighbour: bool, derived: bool) -> None:
        self.index[key] = len(self.rows)
        self.rows.append(row)
        self.rep.trades += 1
        self.rep.spill_in += int(neighbour)
        self.rep.no_tid += int(derived)
        self.rep.liquidations += int(bool(row[9]))

    def finish(self) -> pd.DataFrame:
        for key, m in self.makers.items():  # the taker's fill was never read: keep the trade
            self.rep.taker_missing += 1
            self._add(key, m[:12], m[12], derived=False)
        self.makers.clear()
        if not self.rows:
            return pd.DataFrame({c: [] for c in self.COLS})
        f = pd.DataFrame(self.rows, columns=list(self.COLS))
        return f.sort_values("ts_ns", kind="stable").reset_index(drop=True)


def _json_lines(path: Path, rep: ImportReport, count: bool) -> Iterator[tuple[int, Any]]:
    with _open_text(path) as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if count:
                rep.lines += 1
            try:
                yield i, json.loads(line)
            except ValueError as e:
                rep.bad(path.name, i, f"not JSON: {e}")


def _read_node(af: ArchiveFile, sink: _TradeSink, coins: set[str] | None, rep: ImportReport,
               neighbour: bool) -> None:
    src = af.dataset.value
    for i, obj in _json_lines(af.path, rep, count=not neighbour):
        try:
            if af.dataset == Dataset.NODE_TRADES:
                if not isinstance(obj, dict) or "side_info" not in obj:
                    raise ValueError("not a node trade ({coin, side, time, px, sz, hash, side_info})")
                if coins is None or obj["coin"] in coins:
                    rep.trade_lines += int(not neighbour)
                    sink.node_trade(obj, src, neighbour)
                continue
            pairs = obj["events"] if af.dataset == Dataset.NODE_FILLS_BY_BLOCK else [obj]
            for pair in pairs:
                if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], dict)):
                    raise ValueError("not a [user, fill] pair")
                if coins is None or pair[1]["coin"] in coins:
                    rep.trade_lines += int(not neighbour)
                    sink.fill(pair[1], src, neighbour)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            if not neighbour:
                rep.bad(af.path.name, i, f"{type(e).__name__}: {e}")


def _read_l2(af: ArchiveFile, coins: set[str] | None, rep: ImportReport) -> list[BookSnapshot]:
    out = []
    for i, obj in _json_lines(af.path, rep, count=True):
        try:
            raw = obj["raw"]
            if raw.get("channel") != "l2Book":
                continue
            d = raw["data"]
            if coins is not None and d["coin"] not in coins:
                continue
            bids = [(float(x["px"]), float(x["sz"])) for x in d["levels"][0][:L2_DEPTH]]
            asks = [(float(x["px"]), float(x["sz"])) for x in d["levels"][1][:L2_DEPTH]]
            t = int(d["time"])
            out.append(BookSnapshot(t, t, d["coin"], bids, asks))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
            rep.bad(af.path.name, i, f"{type(e).__name__}: {e}")
    rep.l2_snapshots += len(out)
    return out


# ----------------------------------------------------------------------------- assembly
def read_archive(paths: Iterable[str | Path], coins: Sequence[str] | None = None, interval_ms: int = 60_000,
                 report: ImportReport | None = None, progress: bool = False) -> tuple[ArchiveData, ImportReport]:
    """Read archive files/folders into columnar history (see module docstring)."""
    from tqdm import tqdm

    rep = report if report is not None else ImportReport()
    files = find_files(paths, rep)
    want = set(coins) if coins else None
    given = {af.path for af in files}
    windows = {af.hour_ms for af in files if af.dataset in HOURLY and af.hour_ms is not None}
    unplaced = any(af.dataset in HOURLY and af.hour_ms is None for af in files)
    sink = _TradeSink(rep, None if unplaced or not windows else windows)
    ctx_frames, books = [], []
    neighbours = {}
    for af in files:
        if af.dataset in HOURLY:
            for d in (-1, 1):
                p = _neighbour(af, d)
                if p is not None and p.resolve() not in given:
                    neighbours[p.resolve()] = ArchiveFile(p.resolve(), af.dataset, _hour_of(p))
    order = sorted(files, key=lambda a: (a.dataset.value, a.hour_ms or 0, str(a.path)))
    for af in tqdm(order, desc="archive", unit="file", disable=not progress):
        rep.files += 1
        if af.dataset == Dataset.ASSET_CTXS:
            ctx_frames.append(read_asset_ctxs(af, want, rep))
        elif af.dataset == Dataset.L2BOOK:
            books += _read_l2(af, want, rep)
        else:
            _read_node(af, sink, want, rep, neighbour=False)
    for af in neighbours.values():
        rep.neighbour_files += 1
        _read_node(af, sink, want, rep, neighbour=True)
    trades = sink.finish()
    ctx = normalize_asset_ctxs(ctx_frames, rep)
    names = set(trades["symbol"]) | set(ctx["symbol"]) | {b.symbol for b in books}
    symbols = [c for c in coins if c in names] if coins else sorted(names)
    md = _market(symbols, trades, ctx, books, interval_ms, rep)
    rep.events = len(md)
    return ArchiveData(md, ctx, trades), rep


def _sym_index(symbols: list[str], names: Any) -> np.ndarray:
    idx = {s: i for i, s in enumerate(symbols)}
    return np.array([idx[s] for s in names], dtype=np.int16)


def _market(symbols: list[str], trades: pd.DataFrame, ctx: pd.DataFrame, books: list[BookSnapshot],
            interval_ms: int, rep: ImportReport) -> MarketData:
    arrays: dict[str, np.ndarray] = {}
    if books:
        arrays["l2"] = MarketData.from_events(books, symbols=symbols).l2
    tr = np.zeros(len(trades), MARKET_DTYPES[MarketKind.TRADE])
    if len(trades):
        tr["ts_exch"] = tr["ts_recv"] = trades["ts_ns"].to_numpy(np.int64) // 1_000_000
        tr["sym"] = _sym_index(symbols, trades["symbol"])
        for c in ("side", "px", "sz", "tid"):
            tr[c] = trades[c].to_numpy()
    arrays["trades"] = tr
    tc = trade_candles(tr["ts_exch"], tr["sym"], tr["px"], tr["sz"], interval_ms)
    mc = np.zeros(0, tc.dtype)
    if len(ctx):
        mc = mid_candles(ctx["ts_exch"].to_numpy(), _sym_index(symbols, ctx["symbol"]),
                         ctx["mid_px"].to_numpy(), interval_ms)
        mark_ok = ~np.isnan(ctx["mark_px"].to_numpy())
        rep.mark_missing += int((~mark_ok).sum())
        m = ctx[mark_ok]
        mk = np.zeros(len(m), MARKET_DTYPES[MarketKind.MARK])
        mk["ts_exch"] = mk["ts_recv"] = m["ts_exch"].to_numpy()
        mk["sym"] = _sym_index(symbols, m["symbol"])
        mk["mark_px"], mk["oracle_px"] = m["mark_px"].to_numpy(), m["oracle_px"].to_numpy()
        arrays["mark"] = mk
        fu = funding_from_ctxs(ctx, rep)
        fa = np.zeros(len(fu), MARKET_DTYPES[MarketKind.FUNDING])
        fa["ts_exch"] = fa["ts_recv"] = fu["ts"].to_numpy(np.int64)
        fa["sym"] = _sym_index(symbols, fu["symbol"])
        for c in ("rate", "premium", "oracle_px"):
            fa[c] = fu[c].to_numpy(np.float64)
        arrays["funding"] = fa
    candles = merge_candles(tc, mc)
    rep.trade_candles = int((candles["n"] > 0).sum())
    rep.mid_candles = len(candles) - rep.trade_candles
    arrays["candles"] = candles
    return MarketData(**arrays, symbols=symbols, interval_ms=interval_ms, meta={"source": "hyperliquid-archive"})


# ----------------------------------------------------------------------------- history folder
def _keys(kind: MarketKind, a: np.ndarray) -> pd.MultiIndex:
    cols = [a["ts_exch"], a["sym"]] + ([a["tid"]] if kind == MarketKind.TRADE else [])
    return pd.MultiIndex.from_arrays(cols)


def merge_market(old: MarketData, new: MarketData) -> MarketData:
    """``old`` plus what ``new`` adds; on equal keys ``old`` is kept, except that a bar
    built from trades replaces a bar without trades (a mid-price bar)."""
    syms = list(old.symbols) + [s for s in new.symbols if s not in old.symbols]
    if old.interval_ms != new.interval_ms and len(old.candles) and len(new.candles):
        raise DataError(f"history has {old.interval_ms} ms candles, the import {new.interval_ms} ms")
    out = {}
    for kind, name in STREAMS.items():
        a, b = getattr(old, name).copy(), getattr(new, name).copy()
        a["sym"] = _sym_index(syms, np.array(old.symbols, dtype=object)[a["sym"]]) if len(a) else a["sym"]
        b["sym"] = _sym_index(syms, np.array(new.symbols, dtype=object)[b["sym"]]) if len(b) else b["sym"]
        if kind == MarketKind.CANDLE and len(a) and len(b):
            a = a[~((a["n"] == 0) & _keys(kind, a).isin(_keys(kind, b[b["n"] > 0])))]
        if len(a) and len(b):
            b = b[~_keys(kind, b).isin(_keys(kind, a))]
        out[name] = np.concatenate([a, b])
    return MarketData(**out, symbols=syms, interval_ms=new.interval_ms if len(new.candles) else old.interval_ms,
                      meta=dict(old.meta))


def save_history(data: ArchiveData, out: str | Path) -> MarketData:
    """Write (merging into what ``out`` already holds) the MarketData files, the asset
    contexts (``asset_ctxs.parquet``) and the trade details (``archive_trades.parquet``)."""
    d = Path(out).expanduser()
    md = data.market
    if (d / "candles.parquet").is_file() or (d / "trades.parquet").is_file():
        md = merge_market(MarketData.load(d), md)
    md.save(d)
    ctx = data.asset_ctxs
    old = load_asset_ctxs(d)
    if len(old):
        ctx = pd.concat([old, ctx], ignore_index=True).drop_duplicates(["symbol", "ts_exch"], keep="first")
    save_asset_ctxs(ctx, d, source="hyperliquid-archive/asset_ctxs")
    tr = data.trades
    if (d / TRADES_FILE).is_file():
        tr = pd.concat([pd.read_parquet(d / TRADES_FILE), tr], ignore_index=True)
        tr = tr.drop_duplicates(["symbol", "ts_ns", "tid"], keep="first").sort_values("ts_ns", kind="stable")
    tr.astype({"symbol": str, "hash": str, "dir_override": str, "source": str}).to_parquet(
        d / TRADES_FILE, index=False, compression="zstd")
    return md


def import_archive(paths: Iterable[str | Path], store: Any = None, out: str | Path | None = None,
                   coins: Sequence[str] | None = None, interval_ms: int = 60_000,
                   progress: bool = True) -> ImportReport:
    """Read the archive files and write them to ``store`` (a PostgresStore) and/or ``out``."""
    data, rep = read_archive(paths, coins=coins, interval_ms=interval_ms, progress=progress)
    if out is not None:
        save_history(data, out)
    if store is not None:
        from hlquant.storage.postgres import ingest_asset_ctxs

        if len(data.market):
            for r in store.ingest_market(data.market, progress=progress):
                rep.inserted[r.table] = r.inserted
        if len(data.asset_ctxs):
            rep.inserted["asset_ctxs"] = ingest_asset_ctxs(store, data.asset_ctxs)
    return rep


__all__ = ["Dataset", "ImportReport", "ArchiveData", "ArchiveFile", "classify", "sniff", "find_files",
           "parse_time_ns", "parse_times_ns", "read_asset_ctxs", "normalize_asset_ctxs", "funding_from_ctxs",
           "read_archive", "merge_market", "save_history", "import_archive", "TRADES_FILE"]
