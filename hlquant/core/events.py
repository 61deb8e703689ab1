"""Core events of the data flow.

Every event carries two clocks, as in hftbacktest: ``ts_exch`` (exchange
time, ms since epoch) and ``ts_recv`` (when hlquant received it, ms). Market
history is kept columnar (numpy structured arrays, see ``MARKET_DTYPES``);
the Python dataclasses below are for the comparatively rare per-decision
events (intents, orders, fills...) and for the live wire, where messages
arrive one at a time anyway.

All dataclasses use ``slots`` so that creating one costs a few hundred ns and
no ``__dict__``; ``to_record()`` flattens any of them into a dict for the
audit log and the msgpack bus.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np


class Side(IntEnum):
    """Order / trade side. Values are the sign of the position change."""

    BUY = 1
    SELL = -1

    @property
    def wire(self) -> str:
        """Hyperliquid's side letter: 'B' (bid/buy) or 'A' (ask/sell)."""
        return "B" if self is Side.BUY else "A"

    @classmethod
    def from_wire(cls, s: str) -> Side:
        if s == "B":
            return cls.BUY
        if s == "A":
            return cls.SELL
        raise ValueError(f"unknown side {s!r}, expected 'B' or 'A'")


class Tif(IntEnum):
    """Time in force, as Hyperliquid names them."""

    GTC = 0
    IOC = 1
    ALO = 2

    @property
    def wire(self) -> str:
        return ("Gtc", "Ioc", "Alo")[int(self)]

    @classmethod
    def from_wire(cls, s: str) -> Tif:
        try:
            return {"Gtc": cls.GTC, "Ioc": cls.IOC, "Alo": cls.ALO}[s]
        except KeyError:
            raise ValueError(f"unknown tif {s!r}, expected Gtc, Ioc or Alo") from None


class OrderStatus(IntEnum):
    """Life cycle states, named after Hyperliquid's orderUpdates statuses."""

    PENDING = 0  # accepted by the router, not yet acknowledged
    OPEN = 1
    FILLED = 2
    CANCELED = 3
    TRIGGERED = 4
    REJECTED = 5
    MARGIN_CANCELED = 6
    UNKNOWN = 7  # the reply was ambiguous and lookups could not yet tell what the exchange holds


class ErrorCode(IntEnum):
    """Why a venue refused a request, or could not confirm it.

    Final codes (< 100) are the exchange's definitive answer: sending the same
    request again gets the same answer. Retryable codes (>= 100) say nothing
    about the request itself: rate limits, and replies so ambiguous that the
    exchange may or may not hold the order (resolved by looking the cloid up,
    never by blindly re-sending). Code that reacts to an outcome compares
    codes; the human-readable text stays in ``error`` for people only.
    """

    NONE = 0
    INVALID_SIZE = 1  # not on the lot grid, zero, or not a number
    INVALID_PRICE = 2  # tick / significant figures / non-positive
    MIN_VALUE = 3  # below the minimum order value
    INSUFFICIENT_MARGIN = 4
    REDUCE_ONLY = 5  # a reduce-only order would increase the position
    POST_ONLY_MATCH = 6  # an Alo order would have crossed
    IOC_NO_MATCH = 7  # an Ioc order found nothing to match
    UNKNOWN_ASSET = 8
    NOT_FOUND = 9  # cancel / modify / status: never placed, already canceled or filled
    INVALID_LEVERAGE = 10
    OPEN_ORDER_LIMIT = 11
    BAD_REQUEST = 12  # any other definitive refusal (signature, nonce, vault, malformed action)
    RATE_LIMITED = 100  # HTTP 429 or an exhausted address budget
    UNKNOWN_OUTCOME = 101  # no reply, a 5xx, or a body that is not the exchange's JSON
    UNAVAILABLE = 102  # the request never left (connection refused before sending)

    @property
    def retryable(self) -> bool:
        return self >= 100

    @property
    def final(self) -> bool:
        return 0 < self < 100


class MarketKind(IntEnum):
    """Columnar market stream kinds; also the merge priority at equal timestamps
    (funding before candles so a bar closing on the hour sees the new rate)."""

    FUNDING = 0
    L2 = 1
    BBO = 2
    TRADE = 3
    CANDLE = 4
    MARK = 5


# ---------------------------------------------------------------------------
# Columnar market data layouts (shared by backtest, recorder and storage)
# ---------------------------------------------------------------------------
L2_DEPTH = 10
"""Levels per side kept in bundled/stored L2 snapshots (Hyperliquid sends up to 20)."""

_TS = [("ts_exch", "i8"), ("ts_recv", "i8"), ("sym", "i2")]

MARKET_DTYPES: dict[MarketKind, np.dtype] = {
    MarketKind.CANDLE: np.dtype(
        _TS
        + [("open", "f8"), ("high", "f8"), ("low", "f8"), ("close", "f8"), ("volume", "f8"), ("n", "i4")]
    ),
    MarketKind.TRADE: np.dtype(_TS + [("side", "i1"), ("px", "f8"), ("sz", "f8"), ("tid", "i8")]),
    MarketKind.BBO: np.dtype(
        _TS + [("bid_px", "f8"), ("bid_sz", "f8"), ("ask_px", "f8"), ("ask_sz", "f8")]
    ),
    MarketKind.L2: np.dtype(
        _TS
        + [
            ("bid_px", "f8", (L2_DEPTH,)),
            ("bid_sz", "f8", (L2_DEPTH,)),
            ("ask_px", "f8", (L2_DEPTH,)),
            ("ask_sz", "f8", (L2_DEPTH,)),
        ]
    ),
    MarketKind.FUNDING: np.dtype(_TS + [("rate", "f8"), ("premium", "f8"), ("oracle_px", "f8")]),
    MarketKind.MARK: np.dtype(_TS + [("mark_px", "f8"), ("oracle_px", "f8")]),
}
"""numpy structured dtypes, one per market stream. ``sym`` indexes a symbol table.
Candle timestamps are the bar's *close* time: the bar is known only then."""


# ---------------------------------------------------------------------------
# Row events (one object per event)
# ---------------------------------------------------------------------------
@dataclass(slots=True)
class Event:
    ts_exch: int
    ts_recv: int

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_record(self) -> dict[str, Any]:
        """Flat dict for the audit log / bus; enums become their names."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, IntEnum):
                v = v.name
            elif isinstance(v, np.ndarray):
                v = v.tolist()
            out[f.name] = v
        return out


# --- market data -----------------------------------------------------------
@dataclass(slots=True)
class Trade(Event):
    symbol: str
    side: Side
    px: float
    sz: float
    tid: int = 0


@dataclass(slots=True)
class BookSnapshot(Event):
    """Full L2 snapshot (Hyperliquid sends full snapshots, not diffs)."""

    symbol: str
    bids: list[tuple[float, float]]  # (px, sz), best first
    asks: list[tuple[float, float]]


@dataclass(slots=True)
class BBO(Event):
    symbol: str
    bid_px: float
    bid_sz: float
    ask_px: float
    ask_sz: float


@dataclass(slots=True)
class Candle(Event):
    symbol: str
    interval: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    n: int = 0
    ts_open: int = 0


@dataclass(slots=True)
class FundingRate(Event):
    symbol: str
    rate: float
    premium: float = 0.0
    oracle_px: float = float("nan")


@dataclass(slots=True)
class MarkPrice(Event):
    symbol: str
    mark_px: float
    oracle_px: float = float("nan")


# --- data beyond the exchange -------------------------------------------------
GLOBAL_SERIES = "*"
"""The feature store's symbol key of a signal that belongs to no symbol (a market-wide
sentiment index, an economic release)."""


@dataclass(slots=True)
class Signal(Event):
    """One observation of an external series (sentiment, economic data, on-chain
    indexers, the exchange's own asset contexts), from any connector.

    ``ts_exch`` is the source's time of the observation (its age, for staleness),
    ``ts_recv`` when hlquant received it: the value is visible to agents from
    ``ts_recv`` on, never earlier (backtests apply it at ``ts_recv``). ``symbol`` is
    None for a series that belongs to no symbol."""

    name: str
    value: float
    symbol: str | None = None


# --- internal flow ---------------------------------------------------------
@dataclass(slots=True)
class FeaturesReady(Event):
    """A stream processor has applied market events of ``stream`` (candle, trade,
    l2, bbo, funding, mark) of ``symbol`` up to ``ts_exch`` and written their features:
    agents triggered by that stream may now decide. ``price`` is the last price the
    events carried (candle close, trade price, book or BBO mid, mark; NaN for funding),
    ``count`` how many events the batch held."""

    symbol: str
    stream: str
    price: float = float("nan")
    count: int = 1


@dataclass(slots=True)
class Intent(Event):
    """What an agent wants. Either a target position (``target`` in coin units)
    or an explicit order (``side``/``size``/``px``/``tif``)."""

    intent_id: str
    agent: str
    symbol: str
    target: float | None = None
    side: Side | None = None
    size: float = 0.0
    px: float | None = None
    tif: Tif = Tif.GTC
    reduce_only: bool = False
    trigger_px: float | None = None
    tpsl: str | None = None  # "tp" | "sl" with trigger_px
    reason: str = ""

    @property
    def is_target(self) -> bool:
        return self.target is not None


class RiskCode(IntEnum):
    """What the risk engine decided, as a code (counters and tools key on it; the
    decision's ``reason`` is the same thing in words for people)."""

    APPROVED = 0
    AGENT_DEAD = 1  # heartbeat expired or quarantined
    KILL_SWITCH = 2
    STALE_PRICE = 3  # no price within max_price_age_ms
    BELOW_MIN_NOTIONAL = 4  # the change is smaller than min_order_notional (a no-op)
    LIMIT = 5  # a limit would be exceeded and clipping is off
    NO_ROOM = 6  # clipped to the limit, nothing of useful size is left
    RULE = 7  # a custom rule (risk.rules) refused it
    RATE_LIMIT = 8  # order-rate token bucket empty
    ROUNDS_TO_ZERO = 9  # the size rounds to zero lots
    REDUCE_ONLY_INCREASES = 10  # a reduce-only order would increase the position
    INVALID_INTENT = 11  # unknown side/tif, size <= 0, non-finite number, price <= 0


@dataclass(slots=True)
class RiskDecision(Event):
    intent_id: str
    agent: str
    symbol: str
    approved: bool
    reason: str
    order_size: float = 0.0  # signed size sent to the router (0 if rejected/no-op)
    code: RiskCode = RiskCode.APPROVED
    limit: str = ""  # the limit or rule that clipped or refused it, if any


@dataclass(slots=True)
class OrderRequest(Event):
    """An order as the router sends it to a venue. ``cloid`` is the idempotency key."""

    cloid: str
    intent_id: str
    agent: str
    symbol: str
    side: Side
    size: float
    px: float | None  # None = market (aggressive limit at the venue)
    tif: Tif = Tif.GTC
    reduce_only: bool = False
    trigger_px: float | None = None
    tpsl: str | None = None


@dataclass(slots=True)
class OrderAck(Event):
    cloid: str
    symbol: str
    status: OrderStatus
    oid: int = 0
    filled_sz: float = 0.0
    avg_px: float = 0.0
    error: str = ""  # the venue's text, for people; code is what programs read
    code: ErrorCode = ErrorCode.NONE


@dataclass(slots=True)
class CancelRequest(Event):
    symbol: str
    cloid: str = ""
    oid: int = 0
    reason: str = ""


@dataclass(slots=True)
class CancelAck(Event):
    symbol: str
    cloid: str
    oid: int
    ok: bool
    error: str = ""
    reason: str = ""
    code: ErrorCode = ErrorCode.NONE


@dataclass(slots=True)
class Fill(Event):
    symbol: str
    cloid: str
    oid: int
    side: Side
    px: float
    sz: float
    fee: float
    liquidity: str  # "maker" | "taker"
    tid: int = 0
    agent: str = ""
    closed_pnl: float = 0.0


@dataclass(slots=True)
class FundingPayment(Event):
    symbol: str
    rate: float
    position: float
    oracle_px: float
    amount: float  # cash change for the account: negative when paying


@dataclass(slots=True)
class HeartbeatLoss(Event):
    agent: str
    last_seen: int
    cancelled_intents: list[str] = field(default_factory=list)
    cancelled_orders: list[str] = field(default_factory=list)


@dataclass(slots=True)
class LeverageRequest(Event):
    """Set an asset's leverage (sent through the router replicas in multi-process mode)."""

    symbol: str
    leverage: int
    cross: bool = True


@dataclass(frozen=True, slots=True)
class OrderView:
    """An open order as an agent sees it (``ctx.open_orders()``)."""

    cloid: str
    symbol: str
    agent: str
    side: Side
    size: float  # remaining, coins
    px: float | None
    tif: Tif
    reduce_only: bool = False
    trigger_px: float | None = None


# --- audit records of the components' own decisions ---------------------------
@dataclass(slots=True)
class KillSwitch(Event):
    """Trading halted (configured, drawdown, operator)."""

    reason: str


@dataclass(slots=True)
class DuplicateOrder(Event):
    """An order whose cloid was already claimed: not sent again."""

    cloid: str
    intent_id: str
    agent: str
    symbol: str
    owner: str = ""


@dataclass(slots=True)
class Superseded(Event):
    """Queued, unsent target orders folded into a newer one (``dropped`` cloids)."""

    cloid: str
    intent_id: str
    agent: str
    symbol: str
    dropped: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ModifyRequest(Event):
    """An edit of a resting order (cancel-and-replace; the cloid is kept)."""

    cloid: str
    agent: str
    symbol: str
    px: float | None
    size: float
    old_oid: int = 0


@dataclass(slots=True)
class PositionMismatch(Event):
    """Positions differ from the venue's: {symbol: [ours, venue's]}."""

    symbol: str  # the symbols concerned, comma separated
    diff: dict[str, list[float]] = field(default_factory=dict)


@dataclass(slots=True)
class PositionCorrected(Event):
    """An unexplained gap closed by adopting the venue's size."""

    symbol: str
    from_size: float
    to_size: float


@dataclass(slots=True)
class AgentError(Event):
    """A strategy raised or returned something that is not an intent."""

    agent: str
    symbol: str
    error: str  # exception type and message, one line
    traceback: str = ""  # the last frames, short
    action: str = ""  # what the runner did: raise | quarantine | skip


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        Trade,
        BookSnapshot,
        BBO,
        Candle,
        FundingRate,
        MarkPrice,
        Signal,
        FeaturesReady,
        Intent,
        RiskDecision,
        OrderRequest,
        OrderAck,
        CancelRequest,
        CancelAck,
        Fill,
        FundingPayment,
        HeartbeatLoss,
        LeverageRequest,
        KillSwitch,
        DuplicateOrder,
        Superseded,
        ModifyRequest,
        PositionMismatch,
        PositionCorrected,
        AgentError,
    )
}

_ENUM_FIELDS: dict[type, dict[str, type[IntEnum]]] = {}


def _enum_fields(cls: type[Event]) -> dict[str, type[IntEnum]]:
    """Fields of ``cls`` whose annotation names an enum (decoded from their names)."""
    got = _ENUM_FIELDS.get(cls)
    if got is None:
        enums = {e.__name__: e for e in (Side, Tif, OrderStatus, ErrorCode, RiskCode)}
        got = {}
        for f in dataclasses.fields(cls):
            ann = str(f.type).replace(" | None", "")
            if ann in enums:
                got[f.name] = enums[ann]
        _ENUM_FIELDS[cls] = got
    return got


def event_from_record(rec: dict[str, Any]) -> Event:
    """Inverse of ``Event.to_record`` (used by the bus and by audit replay)."""
    rec = dict(rec)
    cls = EVENT_TYPES[rec.pop("kind")]
    for name, enum in _enum_fields(cls).items():
        v = rec.get(name)
        if isinstance(v, str):
            rec[name] = enum[v]
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in rec.items() if k in names})
