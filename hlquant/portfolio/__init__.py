"""portfolio component."""
