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
- ``price``: float > 0 and at most ``MAX_PRICE``. ``size``: float >= 0 and at most
  ``MAX_SIZE``. ``float``: any finite number (within ``max_abs`` when a column sets it).
- ``int``: integer >= 0. ``side``: "B"/"A", "buy"/"sell" (any case) or 1/-1.
- ``nullable`` columns accept empty/NaN (an absent L2 level, unknown oracle price).

Timestamps (``ts``, ``ts_recv``) must lie between ``MIN_TS_MS`` (2015-01-01) and a day
after the loader runs: a value outside, e.g. seconds or microseconds instead of
milliseconds, is rejected with the unit it looks like.
"""

from __future__ import annotations

from dataclasses import dataclass

from hlquant.core.events import MarketKind

COLUMN_TYPES = ("ts", "symbol", "price", "size", "float", "int", "side")

MAX_PRICE = 1e9
"""Highest price accepted: Hyperliquid's dearest perp (BTC) trades near 1e5; a larger value
is a unit or parsing error (1e300 would overflow notionals and equity)."""
MAX_SIZE = 1e15
"""Largest size or volume accepted (coins): more than any coin's supply per bar or trade."""
MAX_FUNDING_RATE = 0.04
"""Hyperliquid caps funding at 4% per hour (docs: funding); a larger hourly rate is a rate in
percent, a rate per 8 h of another venue, or garbage."""
MIN_TS_MS = 1_420_070_400_000
"""2015-01-01 UTC: earlier timestamps are seconds (or another unit) read as milliseconds."""
FUTURE_MARGIN_MS = 86_400_000
"""Timestamps more than a day after the loader's wall clock are rejected (data cannot come
from the future; microseconds read as milliseconds land in year 57,000)."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a stream file.

    - name: column name (lower case; files are matched case-insensitively).
    - type: one of ``COLUMN_TYPES`` (validation rule, see module doc).
    - required: a file without it is rejected; optional columns take ``default``.
    - nullable: empty/NaN values are allowed.
    - positive: for ``size`` columns, require > 0 instead of >= 0.
    - max_abs: largest absolute value accepted (default by type: ``MAX_PRICE`` for prices,
      ``MAX_SIZE`` for sizes, none for the rest).
    - doc: meaning, shown in docs/data.md.
    """

    name: str
    type: str
    required: bool = True
    default: float | int | None = None
    nullable: bool = False
    positive: bool = False
    max_abs: float | None = None
    doc: str = ""

    @property
    def limit(self) -> float | None:
        """The largest absolute value accepted (``max_abs``, else the type's bound)."""
        if self.max_abs is not None:
            return self.max_abs
        return {"price": MAX_PRICE, "size": MAX_SIZE}.get(self.type)


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
    "OHLCV bars on one grid: the interval is the most common step between a symbol's bars "
    "(or interval_ms=); bars off that grid are rejected unless irregular='accept'.",
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
    "Missing levels are padded with px NaN and sz 0. A level with a price has a size > 0, "
    "bids fall and asks rise with the level, and no bid reaches an ask (a crossed book).",
)
FUNDING = StreamSchema(
    "funding",
    MarketKind.FUNDING,
    (
        _TS,
        _SYM,
        Column("rate", "float", max_abs=MAX_FUNDING_RATE,
               doc="funding rate per hour (Hyperliquid pays hourly, capped at 4%)"),
        Column("premium", "float", required=False, default=0.0, max_abs=1.0),
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
        Column("bid_sz", "size", positive=True),
        Column("ask_px", "price", doc="> bid_px"),
        Column("ask_sz", "size", positive=True),
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
