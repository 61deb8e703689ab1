"""Deterministic identifiers.

The router's idempotency key is Hyperliquid's client order id (``cloid``: 0x +
32 hex digits). Deriving it from the intent id with a hash means any router
replica computes the same cloid for the same intent, so a retry or a second
replica can never create a second order for one intent.
"""

from __future__ import annotations

import hashlib
import re

_CLOID_RE = re.compile(r"^0x[0-9a-f]{32}$")


def cloid_for(intent_id: str, leg: int = 0) -> str:
    """Hyperliquid cloid for an intent (``leg`` distinguishes child orders)."""
    h = hashlib.blake2b(f"{intent_id}#{leg}".encode(), digest_size=16).hexdigest()
    return "0x" + h


def is_cloid(s: str) -> bool:
    return bool(_CLOID_RE.match(s))


def intent_id(agent: str, symbol: str, seq: int, ts: int) -> str:
    """Readable, unique and reproducible across a replay of the same session."""
    return f"{agent}:{symbol}:{ts}:{seq}"
