"""audit component."""
