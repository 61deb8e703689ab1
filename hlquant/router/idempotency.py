"""Idempotency store: the router claims a cloid before sending an order.

``claim`` is set-if-absent with an expiry (Redis ``SET NX PX`` in live mode),
so two router replicas racing on the same intent send exactly one order, and
a restarted replica that replays its input skips what was already claimed.
"""

from __future__ import annotations

from typing import Protocol


class IdempotencyStore(Protocol):
    def claim(self, key: str, owner: str, ttl_ms: int, now: int) -> bool:
        """True if this call claimed ``key``; False if it was already claimed."""
        ...

    def owner(self, key: str, now: int) -> str | None: ...

    def mark(self, key: str, state: str) -> None:
        """Record the outcome for a claimed key (sent, acked, rejected)."""
        ...

    def state(self, key: str) -> str | None: ...


class InMemoryIdempotencyStore:
    def __init__(self) -> None:
        self._claims: dict[str, tuple[str, int]] = {}
        self._state: dict[str, str] = {}

    def claim(self, key: str, owner: str, ttl_ms: int, now: int) -> bool:
        rec = self._claims.get(key)
        if rec is not None and rec[1] >= now:
            return False
        self._claims[key] = (owner, now + ttl_ms)
        return True

    def owner(self, key: str, now: int) -> str | None:
        rec = self._claims.get(key)
        return rec[0] if rec is not None and rec[1] >= now else None

    def mark(self, key: str, state: str) -> None:
        self._state[key] = state

    def state(self, key: str) -> str | None:
        return self._state.get(key)
