"""risk component."""
