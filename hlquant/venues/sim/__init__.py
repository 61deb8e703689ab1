"""Simulated Hyperliquid venue (backtests, paper trading, the fake exchange).

``SimVenue`` (``engine``) combines one module per concern: ``validation``,
``matching``, ``margin``, ``funding``, ``triggers``, ``liquidation``."""

from hlquant.venues.sim.config import AccountState, PositionState, SimVenueConfig
from hlquant.venues.sim.engine import SimVenue
from hlquant.venues.sim.orders import SimOrder

__all__ = ["AccountState", "PositionState", "SimOrder", "SimVenue", "SimVenueConfig"]
