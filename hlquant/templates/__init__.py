"""File templates of ``hlquant new`` (package data)."""
