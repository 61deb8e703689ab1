"""SimVenue: Hyperliquid's trading rules over historical (or replayed) market data.

One account on one simulated exchange. The rules live in one module per
concern, combined here:

- ``validation``: what an order must satisfy on submit (the exchange's texts,
  an ``ErrorCode`` on every refusal);
- ``matching``: taker execution against L2 / BBO / a synthesized book, maker
  fills on later prints, the market-data handlers (the backtest's hot path);
- ``margin``: cross and isolated margin, leverage, the account view;
- ``funding``: hourly payments;
- ``triggers``: tp/sl orders and tp/sl groups;
- ``liquidation``: cross and isolated maintenance-margin checks.

This module keeps the order life cycle: submit, cancel, modify (cancel and
replace: a new oid, the same cloid), arrival after ``latency_ms``, and the
dead man's switch (``schedule_cancel``), which fires at its time on the
first market event or ``advance`` at or after it, whatever the account does,
and reports its cancels as ``scheduledCancel``.

The venue is deterministic: no wall clock, no randomness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from hlquant.core.assets import AssetSpec
from hlquant.core.clock import Clock, SimClock
from hlquant.core.errors import ExchangeError
from hlquant.core.events import (
    CancelAck,
    CancelRequest,
    ErrorCode,
    Event,
    OrderAck,
    OrderRequest,
    OrderStatus,
)
from hlquant.venues.base import VenueListener
from hlquant.venues.sim.config import SimVenueConfig
from hlquant.venues.sim.funding import FundingMixin
from hlquant.venues.sim.latency import latency_model
from hlquant.venues.sim.liquidation import LiquidationMixin
from hlquant.venues.sim.margin import MarginMixin
from hlquant.venues.sim.matching import MatchingMixin
from hlquant.venues.sim.orders import AuxState, Position, SimOrder
from hlquant.venues.sim.triggers import TriggerMixin
from hlquant.venues.sim.validation import ValidationMixin

ERR_CANCEL = "Order was never placed, already canceled, or filled."
ERR_MODIFY = "Cannot modify canceled or filled order"
SCHEDULE_CANCEL_MIN_LEAD_MS = 5_000
_NEVER = 2**62
GROUPINGS = ("na", "normalTpsl", "positionTpsl")


class SimVenue(ValidationMixin, MatchingMixin, MarginMixin, FundingMixin, TriggerMixin, LiquidationMixin):
    """Simulated Hyperliquid perp venue for one account (see module docstring)."""

    name = "sim"

    def __init__(
        self,
        assets: dict[str, AssetSpec],
        config: SimVenueConfig | None = None,
        clock: Clock | None = None,
        account: str = "sim",
    ) -> None:
        self.config = config or SimVenueConfig()
        self.clock = clock or SimClock()
        self.account = account
        self._assets = dict(assets)
        self.cash = float(self.config.initial_cash)
        self._pos: dict[str, Position] = {s: Position() for s in assets}
        self._lev = {
            s: int(min(self.config.leverage.get(s, self.config.default_leverage), a.max_leverage))
            for s, a in assets.items()
        }
        self._iso_syms: set[str] = set()  # symbols whose leverage type is isolated
        self._aux = AuxState(latency_model(self.config))  # tp/sl groups, isolated liquidation prices
        self._last: dict[str, float] = {}
        self._mark: dict[str, float] = {}
        self._mid: dict[str, float] = {}
        self._slack = -math.inf  # margin of safety at the last liquidation pass (-inf: recheck)
        self._band: dict[str, tuple[float, float]] = {}  # per cross position: marks needing no pass
        self._book: dict[str, tuple] = {}  # sym -> (ts, bid_px, bid_sz, ask_px, ask_sz) arrays
        self._bbo: dict[str, tuple] = {}  # sym -> (ts, bid, bid_sz, ask, ask_sz)
        self._orders: dict[int, SimOrder] = {}
        self._live: dict[int, SimOrder] = {}  # open or pending only: what per-order scans iterate
        self._by_cloid: dict[str, int] = {}
        self._resting: dict[str, list[SimOrder]] = {s: [] for s in assets}  # bids best-first, then asks
        self._nbids: dict[str, int] = dict.fromkeys(assets, 0)
        self._triggers: dict[str, list[SimOrder]] = {s: [] for s in assets}
        self._pending: list[SimOrder] = []
        self._active: dict[str, int] = dict.fromkeys(assets, 0)
        self._listeners: list[VenueListener] = []
        self._oid = 0
        self._tid = 0
        self._next_due = _NEVER  # earliest pending arrival or scheduled cancel
        self.fees_paid = 0.0

    # ------------------------------------------------------------------ protocol
    def assets(self) -> dict[str, AssetSpec]:
        return dict(self._assets)

    def add_listener(self, listener: VenueListener) -> None:
        self._listeners.append(listener)

    def _emit(self, ev: Event) -> None:
        for cb in self._listeners:
            cb(ev)

    def positions(self) -> dict[str, float]:
        return {s: p.size for s, p in self._pos.items() if p.size}

    def position_size(self, symbol: str) -> float:
        p = self._pos.get(symbol)
        return p.size if p is not None else 0.0

    def order_status(self, cloid: str) -> OrderAck | None:
        oid = self._by_cloid.get(cloid)
        if oid is None:
            return None
        o = self._orders[oid]
        return o.ack(self.clock.now_ms(), error=o.error)

    def open_orders(self) -> list[OrderAck]:
        now = self.clock.now_ms()
        return [o.ack(now) for o in self._live.values()]

    def open_order_objects(self) -> list[SimOrder]:
        """Open orders with their request (read-only; the fake exchange renders them)."""
        return list(self._live.values())

    def order_object(self, oid: int) -> SimOrder | None:
        """The order record for ``oid`` in any state (read-only), or None."""
        return self._orders.get(oid)

    def oid_of(self, cloid: str) -> int | None:
        """The current oid of ``cloid`` (the newest after a modify), or None."""
        return self._by_cloid.get(cloid)

    def busy(self, symbol: str) -> bool:
        return self._active.get(symbol, 0) > 0 or bool(self._pending)

    @property
    def margin_passes(self) -> int:
        """Full cross-margin liquidation passes so far (prints inside the bands need none)."""
        return self._aux.margin_passes

    def mark_price(self, symbol: str) -> float:
        """Mark, else last trade/candle close, else the book's mid."""
        return self._mark.get(symbol) or self._last.get(symbol) or self._mid.get(symbol, math.nan)

    def _spec(self, symbol: str) -> AssetSpec:
        spec = self._assets.get(symbol)
        if spec is None:
            raise ExchangeError(f"Unknown asset {symbol!r}.", code=ErrorCode.UNKNOWN_ASSET)
        return spec

    # ------------------------------------------------------------------ orders
    def submit(self, orders: Sequence[OrderRequest], grouping: str = "na") -> list[OrderAck]:
        """Place a batch. ``grouping`` as Hyperliquid's order action: ``normalTpsl`` (the
        first order an entry, the trigger orders after it its tp/sl legs, which wait for
        the entry to fill) or ``positionTpsl`` (tp/sl legs on the current position); the
        legs of a group are siblings: one executing cancels the others."""
        if grouping not in GROUPINGS:
            raise ExchangeError(f"Invalid grouping {grouping!r}.", code=ErrorCode.BAD_REQUEST)
        now = self.clock.now_ms()
        if now >= self._next_due:
            self._due(now)
        acks = []
        placed: list[SimOrder] = []
        legs: list[SimOrder] = []
        for i, req in enumerate(orders):
            grouped_leg = grouping != "na" and req.trigger_px is not None and (grouping == "positionTpsl" or i > 0)
            if grouped_leg and req.reduce_only and grouping == "normalTpsl":
                err, code = self._validate_leg(req)
            else:
                err, code = self._validate(req)
            if err:
                acks.append(OrderAck(now, now, req.cloid, req.symbol, OrderStatus.REJECTED, 0,
                                     error=err, code=code))
                continue
            self._oid += 1
            delay = self._aux.latency.delay_ms()
            o = SimOrder(self._oid, req, now + delay)
            if grouped_leg:
                o.group = grouping
                legs.append(o)
                if grouping == "normalTpsl" and placed and placed[0].req.trigger_px is None:
                    self._aux.parent_of[o.oid] = placed[0].oid
            placed.append(o)
            self._orders[o.oid] = o
            self._live[o.oid] = o
            if req.cloid:
                self._by_cloid[req.cloid] = o.oid
            self._active[req.symbol] += 1
            if len(legs) > 1:
                ids = tuple(x.oid for x in legs)
                for x in legs:
                    x.siblings = tuple(i for i in ids if i != x.oid)
            if delay <= 0:
                self._execute(o, now)
                acks.append(o.ack(now, error=o.error))
            else:
                self._pending.append(o)
                self._next_due = min(self._next_due, o.arrive)
                acks.append(o.ack(now))
        return acks

    def _validate_leg(self, req: OrderRequest) -> tuple[str, ErrorCode]:
        """A reduce-only tp/sl leg of an entry that has not filled yet: the position it
        will reduce does not exist yet, so only the order's own rules apply."""
        spec = self._assets.get(req.symbol)
        if spec is None:
            return f"Unknown asset {req.symbol!r}.", ErrorCode.UNKNOWN_ASSET
        if not (req.size > 0) or not spec.is_valid_size(req.size):
            return "Order has invalid size.", ErrorCode.INVALID_SIZE
        for px in (req.px, req.trigger_px):
            if px is not None and not spec.is_valid_price(px):
                return f"Price must be divisible by tick size. asset={spec.asset_id}", ErrorCode.INVALID_PRICE
        if req.cloid and req.cloid in self._by_cloid:
            return f"Duplicate client order id. asset={spec.asset_id}", ErrorCode.BAD_REQUEST
        return "", ErrorCode.NONE

    def cancel(self, cancels: Sequence[CancelRequest]) -> list[CancelAck]:
        now = self.clock.now_ms()
        if now >= self._next_due:
            self._due(now)
        out = []
        for c in cancels:
            oid = c.oid or self._by_cloid.get(c.cloid, 0)
            o = self._orders.get(oid)
            if o is None or not o.is_live:
                out.append(CancelAck(now, now, c.symbol, c.cloid, oid, False, ERR_CANCEL, c.reason,
                                     ErrorCode.NOT_FOUND))
                continue
            self._close(o, OrderStatus.CANCELED)
            out.append(CancelAck(now, now, o.req.symbol, o.req.cloid, oid, True, "", c.reason))
        return out

    def modify(self, cloid: str, order: OrderRequest) -> OrderAck:
        """Cancel-and-replace: the new order keeps the cloid and gets a new oid."""
        now = self.clock.now_ms()
        if now >= self._next_due:
            self._due(now)
        oid = self._by_cloid.get(cloid) if isinstance(cloid, str) else int(cloid)
        o = self._orders.get(oid or 0)
        if o is None or not o.is_live:
            return OrderAck(now, now, cloid, order.symbol, OrderStatus.REJECTED, oid or 0,
                            error=ERR_MODIFY, code=ErrorCode.NOT_FOUND)
        self._close(o, OrderStatus.CANCELED)
        self._by_cloid.pop(o.req.cloid, None)
        if order.cloid != o.req.cloid:
            order = OrderRequest(order.ts_exch, order.ts_recv, o.req.cloid, order.intent_id, order.agent,
                                 order.symbol, order.side, order.size, order.px, order.tif,
                                 order.reduce_only, order.trigger_px, order.tpsl)
        return self.submit([order])[0]

    def force_fill(self, oid: int, ts: int) -> bool:
        """Fill a resting order at its limit now, as a trade through it would (used by the
        fake exchange's fault hooks to make a fill race a request). False if not resting."""
        o = self._orders.get(oid)
        if o is None or o.status != OrderStatus.OPEN or o.req.px is None or o not in self._resting[o.req.symbol]:
            return False
        self._fill(o, o.req.px, o.remaining, ts, maker=True)
        self._finish(o, ts)
        self._emit(o.ack(ts))
        return True

    def schedule_cancel(self, at_ms: int | None) -> None:
        now = self.clock.now_ms()
        if at_ms is None:
            self._aux.dms_at = None
            self._recompute_due()
            return
        if at_ms < now + SCHEDULE_CANCEL_MIN_LEAD_MS:
            raise ExchangeError("Scheduled cancel time too early, must be at least 5 seconds from now.",
                                code=ErrorCode.BAD_REQUEST)
        self._aux.dms_at = int(at_ms)
        self._next_due = min(self._next_due, self._aux.dms_at)

    @property
    def scheduled_cancel_at(self) -> int | None:
        """When the dead man's switch fires (ms), or None when disarmed."""
        return self._aux.dms_at

    # ------------------------------------------------------------------ life cycle
    def _close(self, o: SimOrder, status: OrderStatus) -> None:
        if o.is_live:
            self._active[o.req.symbol] -= 1
        self._live.pop(o.oid, None)
        o.status = status
        lst = self._resting[o.req.symbol]
        if o in lst:
            lst.remove(o)
            if o.sign > 0:
                self._nbids[o.req.symbol] -= 1
        tl = self._triggers[o.req.symbol]
        if o in tl:
            tl.remove(o)
        if o in self._pending:
            self._pending.remove(o)
        waiting = self._aux.waiting
        if waiting and status != OrderStatus.FILLED and o.oid in waiting:
            ts = self.clock.now_ms()
            for leg in waiting.pop(o.oid):  # the entry is gone: its legs go with it
                if leg.is_live:
                    self._close(leg, OrderStatus.CANCELED)
                    self._emit(CancelAck(ts, ts, leg.req.symbol, leg.req.cloid, leg.oid, True, "", "canceled"))

    def _recompute_due(self) -> None:
        nxt = min((o.arrive for o in self._pending), default=_NEVER)
        if self._aux.dms_at is not None:
            nxt = min(nxt, self._aux.dms_at)
        self._next_due = nxt

    def _due(self, now: int) -> None:
        """Orders whose arrival time has come execute; a scheduled cancel whose time has
        come fires. Runs on every market event and ``advance`` at or past ``_next_due``."""
        if self._pending:
            due = [o for o in self._pending if o.arrive <= now]
            if due:
                self._pending = [o for o in self._pending if o.arrive > now]
                for o in sorted(due, key=lambda o: (o.arrive, o.oid)):
                    self._execute(o, o.arrive)
                    if o.status != OrderStatus.OPEN or o.filled:
                        self._emit(o.ack(o.arrive, error=o.error))
                    else:
                        self._emit(o.ack(o.arrive))
        if self._aux.dms_at is not None and now >= self._aux.dms_at:
            at, self._aux.dms_at = self._aux.dms_at, None
            for o in list(self._live.values()):
                if o.is_live:
                    o.reason = "scheduledCancel"
                    self._close(o, OrderStatus.CANCELED)
                    self._emit(CancelAck(at, at, o.req.symbol, o.req.cloid, o.oid, True, "", o.reason))
        self._recompute_due()

    def advance(self, ts: int) -> None:
        """Time passes without market data: pending arrivals and the dead man's switch."""
        if ts >= self._next_due:
            self._due(ts)
