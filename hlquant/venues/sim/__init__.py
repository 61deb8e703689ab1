"""Simulated Hyperliquid venue (backtests, paper trading, the fake exchange)."""

from hlquant.venues.sim.config import AccountState, PositionState, SimVenueConfig
from hlquant.venues.sim.engine import SimVenue

__all__ = ["AccountState", "PositionState", "SimVenue", "SimVenueConfig"]
