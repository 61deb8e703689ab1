"""BusVenue: the venue the risk process sees in the multi-process topology.

Orders and cancels become stream entries (``OrderRequest:{SYM}``,
``CancelRequest:{SYM}``, ``Modify:{SYM}``, ``LeverageRequest:{SYM}``) that
the router replicas consume and send to the exchange; their outcomes come
back on ``Exec:{SYM}`` (``on_exec``) and fills from the exchange's user
channel (``on_fill``). To the OrderRouter it is a venue like any other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from hlquant.core.assets import AssetSpec
from hlquant.core.clock import Clock
from hlquant.core.events import (
    CancelAck,
    CancelRequest,
    Event,
    Fill,
    LeverageRequest,
    OrderAck,
    OrderRequest,
    OrderStatus,
)


class BusVenue:
    """The Venue the risk process's router sees: orders and cancels become stream
    entries for the router replicas; outcomes come back from the Exec streams
    (``on_exec``) and fills from the exchange's user channel (``on_fill``)."""

    name = "bus"

    def __init__(self, bus: Any, assets: dict[str, AssetSpec], clock: Clock) -> None:
        self.bus = bus
        self.clock = clock
        self._assets = dict(assets)
        self._listeners: list = []
        self.cloid_by_oid: dict[int, str] = {}
        self._acks: dict[str, OrderAck] = {}
        self._pos: dict[str, float] = {}
        self._orphans: dict[int, list[Fill]] = {}  # fills whose order's oid no Exec named yet
        self._orphan_since: dict[int, int] = {}

    def assets(self) -> dict[str, AssetSpec]:
        return dict(self._assets)

    def add_listener(self, listener) -> None:
        self._listeners.append(listener)

    def _emit(self, ev: Event) -> None:
        for cb in self._listeners:
            cb(ev)

    def submit(self, orders: Sequence[OrderRequest]) -> list[OrderAck]:
        self.bus.publish_many([(f"OrderRequest:{{{o.symbol}}}", o) for o in orders])
        return [OrderAck(o.ts_exch, o.ts_recv, o.cloid, o.symbol, OrderStatus.PENDING) for o in orders]

    def cancel(self, cancels: Sequence[CancelRequest]) -> list[CancelAck]:
        self.bus.publish_many([(f"CancelRequest:{{{c.symbol}}}", c) for c in cancels])
        return [CancelAck(c.ts_exch, c.ts_recv, c.symbol, c.cloid, c.oid, False, "pending", c.reason)
                for c in cancels]

    def on_exec(self, topic: str, ev: Event) -> None:
        if isinstance(ev, OrderAck):
            if ev.oid and ev.cloid:
                self.cloid_by_oid[ev.oid] = ev.cloid
            self._acks[ev.cloid] = ev
            early = self._orphans.pop(ev.oid, []) if ev.oid else []
            self._orphan_since.pop(ev.oid, None)
            if early:  # the user channel was faster than the replica's Exec: attribute them now
                self._emit(ev)
                for f in early:
                    f.cloid = ev.cloid
                    self._emit(f)
                return
        elif isinstance(ev, CancelAck) and ev.ok and ev.cloid in self._acks:
            a = self._acks[ev.cloid]
            self._acks[ev.cloid] = OrderAck(ev.ts_exch, ev.ts_recv, a.cloid, a.symbol, OrderStatus.CANCELED, a.oid,
                                            a.filled_sz, a.avg_px)
        self._emit(ev)

    def on_fill(self, ev: Event) -> None:
        """A fill or funding payment from the exchange's user channel. A fill of an order
        whose oid no Exec has named yet waits for it, so it is attributed to its order."""
        if isinstance(ev, Fill):
            self._pos[ev.symbol] = self._pos.get(ev.symbol, 0.0) + ev.sz * int(ev.side)
            if not ev.cloid:
                ev.cloid = self.cloid_by_oid.get(ev.oid, "")
                if not ev.cloid and ev.oid:
                    self._orphans.setdefault(ev.oid, []).append(ev)
                    self._orphan_since.setdefault(ev.oid, self.clock.now_ms())
                    return
        self._emit(ev)

    def release_orphans(self, max_wait_ms: int = 5_000) -> int:
        """Fills no Exec claimed within ``max_wait_ms`` (orders placed outside hlquant, or
        an Exec lost): applied unattributed, so positions never miss a fill."""
        now = self.clock.now_ms()
        n = 0
        for oid, since in list(self._orphan_since.items()):
            if now - since >= max_wait_ms:
                del self._orphan_since[oid]
                for f in self._orphans.pop(oid, []):
                    self._emit(f)
                    n += 1
        return n

    def modify(self, cloid: str, order: OrderRequest) -> OrderAck:
        """The edit goes to the replicas on ``Modify:{SYM}``; its outcome returns on Exec."""
        if order.cloid != cloid:
            order = dataclasses.replace(order, cloid=cloid)
        self.bus.publish(f"Modify:{{{order.symbol}}}", order)
        return OrderAck(order.ts_exch, order.ts_recv, cloid, order.symbol, OrderStatus.PENDING)

    def order_status(self, cloid: str) -> OrderAck | None:
        """The last outcome the replicas reported for ``cloid`` (None before any)."""
        return self._acks.get(cloid)

    def open_orders(self) -> list[OrderAck]:
        return [a for a in self._acks.values() if a.status == OrderStatus.OPEN]

    def positions(self) -> dict[str, float]:
        """Positions implied by the fills received from the exchange's user channel."""
        return {s: q for s, q in self._pos.items() if abs(q) > 1e-12}

    def schedule_cancel(self, at_ms: int | None) -> None:
        """The router replicas keep the exchange's dead man's switch armed."""

    def set_leverage(self, symbol: str, leverage: int, cross: bool = True) -> None:
        now = self.clock.now_ms()
        self.bus.publish(f"LeverageRequest:{{{symbol}}}", LeverageRequest(now, now, symbol, int(leverage), cross))
