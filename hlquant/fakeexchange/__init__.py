"""A fake Hyperliquid exchange (REST /info, /exchange and WebSocket) on loopback."""

from hlquant.fakeexchange.server import FakeExchange

__all__ = ["FakeExchange"]
