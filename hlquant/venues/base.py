"""The Venue interface: what the OrderRouter talks to.

``SimVenue`` (simulated matching with Hyperliquid's rules) and
``HyperliquidVenue`` (signed actions against the real or fake exchange)
both implement it, so the router cannot tell them apart. Calls are
synchronous: a backtest calls them inline, live mode runs them in a worker
thread. Asynchronous outcomes (fills, order updates, funding payments,
cancels by the exchange) are pushed to listeners as core events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from hlquant.core.assets import AssetSpec
from hlquant.core.events import CancelAck, CancelRequest, Event, OrderAck, OrderRequest

VenueListener = Callable[[Event], None]
"""Receives Fill, OrderAck (status changes), CancelAck and FundingPayment events."""


@runtime_checkable
class Venue(Protocol):
    name: str

    def assets(self) -> dict[str, AssetSpec]:
        """Tradable assets and their rules, keyed by symbol."""
        ...

    def add_listener(self, listener: VenueListener) -> None: ...

    def submit(self, orders: Sequence[OrderRequest]) -> list[OrderAck]:
        """Place a batch; one ack per order, in order (resting, filled or error)."""
        ...

    def cancel(self, cancels: Sequence[CancelRequest]) -> list[CancelAck]:
        """Cancel a batch, each by ``oid`` or, when oid is 0, by ``cloid``."""
        ...

    def modify(self, cloid: str, order: OrderRequest) -> OrderAck:
        """Cancel-and-replace the order known by ``cloid``; the new order gets a new oid."""
        ...

    def order_status(self, cloid: str) -> OrderAck | None:
        """Current status of an order by cloid, or None if the venue never saw it."""
        ...

    def open_orders(self) -> list[OrderAck]: ...

    def positions(self) -> dict[str, float]:
        """Signed position size per symbol, as the venue sees it."""
        ...

    def schedule_cancel(self, at_ms: int | None) -> None:
        """Dead man's switch: cancel all open orders at ``at_ms``; None disarms it."""
        ...

    def set_leverage(self, symbol: str, leverage: int, cross: bool = True) -> None: ...
