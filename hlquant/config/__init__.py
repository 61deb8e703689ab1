"""config component."""
