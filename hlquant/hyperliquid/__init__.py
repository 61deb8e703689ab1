"""Hyperliquid wire layer: signing, wire formats, REST info/exchange clients,
the WebSocket market-data connector and the HyperliquidVenue."""
