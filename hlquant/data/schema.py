"""Column specs of the user-facing file format read by ``hlquant.data.loaders``.

One file per stream in a directory: ``candles`` (required), ``trades``,
``l2``, ``funding``, ``bbo``, ``mark`` (optional), each ``.parquet`` or
``.csv``. Every file has ``ts`` and ``symbol`` plus the stream's fields.
Column names are case-insensitive. ``docs/data.md`` shows examples.

Column types:

- ``ts``: int milliseconds since epoch, or an ISO-8601 string / pandas
  datetime (naive = UTC). Candle ``ts`` is the bar *open* time by default
  (as Hyperliquid's ``t``); ``load_files(candle_ts="close")`` flips that.
- ``ts_recv`` (optional everywhere): receive time, same formats; default
  the exchange time (bar close for candles).
- ``symbol``: non-empty string.
- ``price``: float > 0. ``size``: float >= 0. ``float``: any finite number.
- ``int``: integer >= 0. ``side``: "B"/"A", "buy"/"sell" (any case) or 1/-1.
- ``nullable`` columns accept empty/NaN (an absent L2 level, unknown oracle price).
"""

from __future__ import annotations

from dataclasses import dataclass

from hlquant.core.events import MarketKind

COLUMN_TYPES = ("ts", "symbol", "price", "size", "float", "int", "side")


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a stream file.

    - name: column name (lower case; files are matched case-insensitively).
    - type: one of ``COLUMN_TYPES`` (validation rule, see module doc).
    - required: a file without it is rejected; optional columns take ``default``.
    - nullable: empty/NaN values are allowed.
    - positive: for ``size`` columns, require > 0 instead of >= 0.
    - doc: meaning, shown in docs/data.md.
    """

    name: str
    type: str
    required: bool = True
    default: float | int | None = None
    nullable: bool = False
    positive: bool = False
    doc: str = ""


@dataclass(frozen=True, slots=True)
class StreamSchema:
    """A stream file: its name (file stem), kind, columns and uniqueness key."""

    name: str
    kind: MarketKind
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    doc: str = ""

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


_TS = Column("ts", "ts", doc="exchange time (candles: bar open unless candle_ts='close')")
_SYM = Column("symbol", "symbol", doc="coin name as on Hyperliquid, e.g. BTC")
_RECV = Column("ts_recv", "ts", required=False, doc="receive time; default = exchange time")

CANDLES = StreamSchema(
    "candles",
    MarketKind.CANDLE,
    (
        _TS,
        _SYM,
        Column("open", "price"),
        Column("high", "price", doc=">= low, open and close"),
        Column("low", "price", doc="<= open and close"),
        Column("close", "price"),
        Column("volume", "size", doc="base-asset volume"),
        Column("n", "int", required=False, default=0, doc="number of trades"),
        _RECV,
    ),
    ("ts", "symbol"),
    "OHLCV bars, one interval (inferred from the smallest ts step, or interval_ms=).",
)
TRADES = StreamSchema(
    "trades",
    MarketKind.TRADE,
    (
        _TS,
        _SYM,
        Column("side", "side", doc="aggressor: B/buy or A/sell"),
        Column("px", "price"),
        Column("sz", "size", positive=True),
        Column("tid", "int", required=False, doc="trade id; default: running number"),
        _RECV,
    ),
    (),
    "Public trades. Several trades may share a timestamp.",
)
L2 = StreamSchema(
    "l2",
    MarketKind.L2,
    (
        _TS,
        _SYM,
        Column("level", "int", doc="0 = best; levels >= L2_DEPTH are dropped"),
        Column("bid_px", "price", nullable=True),
        Column("bid_sz", "size", nullable=True),
        Column("ask_px", "price", nullable=True),
        Column("ask_sz", "size", nullable=True),
        _RECV,
    ),
    ("ts", "symbol", "level"),
    "Book snapshots in long format: one row per (ts, symbol, level). "
    "Missing levels are padded with px NaN and sz 0.",
)
FUNDING = StreamSchema(
    "funding",
    MarketKind.FUNDING,
    (
        _TS,
        _SYM,
        Column("rate", "float", doc="funding rate per hour (Hyperliquid pays hourly)"),
        Column("premium", "float", required=False, default=0.0),
        Column("oracle_px", "price", required=False, default=float("nan"), nullable=True),
        _RECV,
    ),
    ("ts", "symbol"),
    "Funding rates at their settlement time.",
)
BBO = StreamSchema(
    "bbo",
    MarketKind.BBO,
    (
        _TS,
        _SYM,
        Column("bid_px", "price"),
        Column("bid_sz", "size"),
        Column("ask_px", "price", doc="> bid_px"),
        Column("ask_sz", "size"),
        _RECV,
    ),
    ("ts", "symbol"),
    "Best bid and offer.",
)
MARK = StreamSchema(
    "mark",
    MarketKind.MARK,
    (
        _TS,
        _SYM,
        Column("mark_px", "price"),
        Column("oracle_px", "price", required=False, default=float("nan"), nullable=True),
        _RECV,
    ),
    ("ts", "symbol"),
    "Mark (and oracle) prices.",
)

SCHEMAS: dict[str, StreamSchema] = {s.name: s for s in (CANDLES, TRADES, L2, FUNDING, BBO, MARK)}
"""Stream schemas by file stem; ``candles`` is required, the rest optional."""

FILE_SUFFIXES = (".parquet", ".csv", ".csv.gz")
"""Accepted file endings, in order of preference when several exist."""
