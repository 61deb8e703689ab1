"""Nonce sources: strictly increasing per signer, also across processes.

The exchange keeps each signer's 100 highest nonces and refuses a repeat or
one at or below the smallest of them. One process gets that from
``NonceManager`` (a lock and ``max(now_ms, last + 1)``); several router
replicas signing with one key need one shared sequence, or two of them will
sooner or later pick the same millisecond ("Invalid nonce: duplicate
nonce"). ``RedisNonceSource`` is that sequence: a Lua script computes
``max(redis_now_ms, last + 1)`` and stores it atomically, one key per
signer, with Redis's own clock so replicas on different machines agree.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from hlquant.hyperliquid.signing import NonceManager

_NEXT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = now
if last + 1 > n then n = last + 1 end
redis.call('SET', KEYS[1], n)
return n
"""


@runtime_checkable
class NonceSource(Protocol):
    def next(self) -> int:
        """The next nonce (ms-based, strictly greater than every one handed out before)."""
        ...


class RedisNonceSource:
    """A nonce sequence per signer shared through Redis (one key: ``{ns}:nonce:{signer}``).

    ``client`` is a ``redis.Redis`` (or cluster) client; ``signer`` the address that
    signs (the agent), since the exchange keeps nonces per signer."""

    def __init__(self, client: Any, signer: str, namespace: str = "hlq") -> None:
        self.client = client
        self.key = f"{namespace}:nonce:{{{signer.lower()}}}"
        self._script = client.register_script(_NEXT)

    def next(self) -> int:
        return int(self._script(keys=[self.key]))


__all__ = ["NonceManager", "NonceSource", "RedisNonceSource"]
