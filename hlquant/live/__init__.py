"""live component."""
