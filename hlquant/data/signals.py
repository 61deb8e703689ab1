"""Per-minute asset contexts kept as signals for agents (and alternative-data connectors).

Hyperliquid's ``asset_ctxs`` archive has one row per coin per minute. Funding
and the mark price become the backtest's FUNDING and MARK streams
(``MarketData``); every field is also kept here, unchanged apart from parsing,
so agents can read open interest, premium, impact prices and so on.

File format (``asset_ctxs.parquet`` beside the MarketData stream files, written
by ``save_asset_ctxs``), one row per (symbol, minute), sorted by ``(ts_exch,
symbol)``:

- ``ts_exch`` int64 ms: the minute the row is stamped with (see ``ts_src``);
- ``ts_src`` int64 ms: the row's own time in the file (differs for off-grid rows,
  which are stamped at the next minute boundary so nothing is seen early);
- ``symbol`` string;
- ``ASSET_CTX_FIELDS`` float64, NaN where the archive had an empty field, the
  string ``null``, or 0.0 in a price field (illiquid coins show 0.0 prices).

The Parquet key-value metadata ``hlquant`` holds ``{"kind": "asset_ctxs",
"version": 1, "source": ...}``. PostgreSQL keeps the same columns in the table
``<schema>.asset_ctxs`` (``hlquant.storage.postgres.ingest_asset_ctxs``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hlquant.core.errors import DataError
from hlquant.data.market import to_ms

ASSET_CTX_FIELDS: tuple[str, ...] = (
    "funding", "open_interest", "prev_day_px", "day_ntl_vlm", "premium", "oracle_px",
    "mark_px", "mid_px", "impact_bid_px", "impact_ask_px",
)
"""The archive's columns after ``time, coin``, in file order."""

PRICE_FIELDS: frozenset[str] = frozenset(
    {"prev_day_px", "oracle_px", "mark_px", "mid_px", "impact_bid_px", "impact_ask_px"})
"""Fields where 0.0 means "no price" (illiquid coin), stored as NaN."""

ASSET_CTXS_FILE = "asset_ctxs.parquet"
_META_KEY = b"hlquant"
COLUMNS: tuple[str, ...] = ("ts_exch", "ts_src", "symbol", *ASSET_CTX_FIELDS)


def empty_frame() -> pd.DataFrame:
    cols: dict[str, Any] = {"ts_exch": np.zeros(0, np.int64), "ts_src": np.zeros(0, np.int64),
                            "symbol": np.zeros(0, object)}
    cols.update({f: np.zeros(0, np.float64) for f in ASSET_CTX_FIELDS})
    return pd.DataFrame(cols)


def save_asset_ctxs(frame: pd.DataFrame, directory: str | Path, source: str = "") -> Path:
    """Write ``frame`` (columns ``COLUMNS``) as ``directory/asset_ctxs.parquet``."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"asset_ctxs frame lacks columns {missing}")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    f = frame[list(COLUMNS)].sort_values(["ts_exch", "symbol"], kind="stable").reset_index(drop=True)
    table = pa.Table.from_pandas(f.astype({"ts_exch": "int64", "ts_src": "int64", "symbol": str}),
                                 preserve_index=False)
    meta = json.dumps({"kind": "asset_ctxs", "version": 1, "source": source}).encode()
    path = d / ASSET_CTXS_FILE
    pq.write_table(table.replace_schema_metadata({_META_KEY: meta}), path, compression="zstd")
    return path


def load_asset_ctxs(directory: str | Path, symbols: list[str] | None = None,
                    start: Any = None, end: Any = None) -> pd.DataFrame:
    """Read ``directory/asset_ctxs.parquet`` (``start <= ts_exch < end``); empty if absent."""
    path = Path(directory) / ASSET_CTXS_FILE
    if not path.is_file():
        return empty_frame()
    md = pq.read_schema(path).metadata or {}
    if _META_KEY not in md or json.loads(md[_META_KEY]).get("kind") != "asset_ctxs":
        raise DataError(f"{path}: not an hlquant asset_ctxs file")
    f = pq.read_table(path).to_pandas()
    f["symbol"] = f["symbol"].astype(object)
    if symbols is not None:
        f = f[f["symbol"].isin(list(symbols))]
    t0, t1 = to_ms(start), to_ms(end)
    if t0 is not None:
        f = f[f["ts_exch"] >= t0]
    if t1 is not None:
        f = f[f["ts_exch"] < t1]
    return f.reset_index(drop=True)


__all__ = ["ASSET_CTX_FIELDS", "PRICE_FIELDS", "ASSET_CTXS_FILE", "COLUMNS", "save_asset_ctxs",
           "load_asset_ctxs", "empty_frame"]
