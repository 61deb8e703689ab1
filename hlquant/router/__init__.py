"""router component."""
