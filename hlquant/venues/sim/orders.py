"""The SimVenue's order and position records.

``SimOrder`` is what the venue tracks per order; its attributes are public
and read-only for callers (the fake exchange renders them), only the venue
changes them. ``reason`` carries Hyperliquid's name for *why* an order left
the book when that is more than a plain cancel (``scheduledCancel``,
``marginCanceled``, ``siblingFilledCanceled`` ...), so a wire layer can
report the exchange's status string without guessing.
"""

from __future__ import annotations

from typing import Any

from hlquant.core.events import ErrorCode, OrderAck, OrderRequest, OrderStatus


class SimOrder:
    __slots__ = ("oid", "req", "remaining", "filled", "notional", "status", "arrive", "triggered",
                 "error", "code", "reason", "group", "siblings")

    def __init__(self, oid: int, req: OrderRequest, arrive: int) -> None:
        self.oid = oid
        self.req = req
        self.remaining = req.size
        self.filled = 0.0
        self.notional = 0.0
        self.status = OrderStatus.PENDING
        self.arrive = arrive
        self.triggered = False
        self.error = ""
        self.code = ErrorCode.NONE
        self.reason = ""  # Hyperliquid's status name when it is not the plain one
        self.group = ""  # "normalTpsl" / "positionTpsl" for tp/sl legs placed as a group
        self.siblings: tuple[int, ...] = ()  # oids cancelled when this one fills (tp/sl pair)

    @property
    def sign(self) -> int:
        return int(self.req.side)

    @property
    def avg_px(self) -> float:
        return self.notional / self.filled if self.filled else 0.0

    @property
    def is_live(self) -> bool:
        return self.status == OrderStatus.OPEN or self.status == OrderStatus.PENDING

    def ack(self, ts: int, status: OrderStatus | None = None, error: str = "") -> OrderAck:
        avg = self.notional / self.filled if self.filled else 0.0
        st = status or self.status
        code = self.code if st == OrderStatus.REJECTED else ErrorCode.NONE
        return OrderAck(ts, ts, self.req.cloid, self.req.symbol, st, self.oid, self.filled, avg, error, code)


class Position:
    """One asset's position. ``iso_margin`` is the USDC set aside for an isolated
    position (0 for cross): the position's equity is ``iso_margin + unrealized``."""

    __slots__ = ("size", "entry", "realized", "funding", "iso_margin")

    def __init__(self) -> None:
        self.size = 0.0
        self.entry = 0.0
        self.realized = 0.0
        self.funding = 0.0
        self.iso_margin = 0.0


class AuxState:
    """Venue state that the per-event hot path does not touch when unused: tp/sl groups,
    isolated liquidation prices, the dead man's switch. Kept in one object so the venue instance stays under 30
    attributes, the limit up to which CPython shares instance-dict keys and specializes
    attribute access (crossing it made every market event ~20% slower)."""

    __slots__ = ("waiting", "parent_of", "iso_liq", "dms_at", "margin_passes", "latency")

    def __init__(self, latency: Any = None) -> None:
        self.latency = latency  # the order latency model (constant, or drawn from measured samples)
        self.margin_passes = 0  # full cross-margin liquidation passes (the rest were inside the bands)
        self.dms_at: int | None = None  # when the dead man's switch fires
        self.waiting: dict[int, list[SimOrder]] = {}  # normalTpsl entry oid -> legs waiting for it
        self.parent_of: dict[int, int] = {}  # normalTpsl leg oid -> entry oid
        self.iso_liq: dict[str, float] = {}  # isolated position -> liquidation price
