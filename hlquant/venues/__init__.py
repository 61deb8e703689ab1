"""Venues: where orders go. ``SimVenue`` for backtests and paper trading,
``hyperliquid`` for the real (or fake) exchange."""

from hlquant.venues.base import Venue, VenueListener

__all__ = ["Venue", "VenueListener"]
