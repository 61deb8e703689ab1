"""storage component."""
