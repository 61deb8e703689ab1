"""What an agent may know about the account: positions, entry prices, equity, open orders.

``Context`` reads the account through this interface in every topology. In
one process it is the live :class:`~hlquant.portfolio.portfolio.Portfolio`
and the router's open orders (``LocalAccount``); in the multi-process
topology it is a read model the portfolio's owner publishes to Redis
(``hlquant.bus.redis_state.RedisAccountView``), which, like any feature,
refuses to answer when it is older than its staleness rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from hlquant.core.events import OrderView


class Account(Protocol):
    def position(self, symbol: str, now: int) -> float:
        """Signed position in coins (all agents together)."""
        ...

    def entry_price(self, symbol: str, now: int) -> float:
        """Average entry price of the open position (0 when flat)."""
        ...

    def equity(self, now: int) -> float: ...

    def open_orders(self, symbol: str | None, now: int) -> list[OrderView]: ...


class LocalAccount:
    """The account of a single-process kernel: the portfolio itself, and the
    router's open orders (``orders`` returns them as ``OrderView``)."""

    def __init__(self, portfolio: Any, orders: Callable[[], Iterable[OrderView]] | None = None) -> None:
        self.portfolio = portfolio
        self._orders = orders

    def position(self, symbol: str, now: int) -> float:
        return self.portfolio.position(symbol)

    def entry_price(self, symbol: str, now: int) -> float:
        p = self.portfolio.positions.get(symbol)
        return p.entry_px if p is not None and p.size else 0.0

    def equity(self, now: int) -> float:
        return self.portfolio.equity()

    def open_orders(self, symbol: str | None, now: int) -> list[OrderView]:
        if self._orders is None:
            return []
        return [o for o in self._orders() if symbol is None or o.symbol == symbol]
