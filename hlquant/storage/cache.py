"""A short-TTL Redis cache in front of frequent historical queries.

Notebooks and dashboards ask the same questions over and over (the last day
of 1-minute candles, this week's funding). ``cached(key_parts, ttl, fn)``
returns the pickled answer from Redis when it is younger than ``ttl`` seconds,
else runs ``fn`` and stores it. Keys hash their parts, so any argument change
is a different entry; ``hits`` / ``misses`` count what the cache saved.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class QueryCache:
    def __init__(self, client: Any, namespace: str = "hlq:cache", ttl_s: float = 30.0) -> None:
        self.r = client
        self.ns = namespace
        self.ttl_s = ttl_s
        self.hits = 0
        self.misses = 0

    def key(self, *parts: Any) -> str:
        h = hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()
        return f"{self.ns}:{h}"

    def cached(self, parts: tuple, fn: Callable[[], T], ttl_s: float | None = None) -> T:
        k = self.key(*parts)
        raw = self.r.get(k)
        if raw is not None:
            self.hits += 1
            return pickle.loads(raw)
        self.misses += 1
        value = fn()
        self.r.set(k, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL),
                   px=int((ttl_s if ttl_s is not None else self.ttl_s) * 1000))
        return value

    def invalidate(self, *parts: Any) -> bool:
        return bool(self.r.delete(self.key(*parts)))


class CachedStore:
    """``PostgresStore`` reads through the cache (``load_market``, ``rollup``)."""

    def __init__(self, store: Any, cache: QueryCache) -> None:
        self.store, self.cache = store, cache

    def load_market(self, symbols: list[str] | None = None, start: Any = None, end: Any = None):
        return self.cache.cached(("load_market", self.store.schema, tuple(symbols or ()), str(start), str(end)),
                                 lambda: self.store.load_market(symbols, start, end))

    def rollup(self, name: str, symbol: str):
        return self.cache.cached(("rollup", self.store.schema, name, symbol),
                                 lambda: self.store.rollup(name, symbol))
