"""The Redis query cache in front of the PostgreSQL store."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from hlquant.data.loaders import load_sample
from hlquant.storage.cache import CachedStore, QueryCache
from tests.conftest import require_server


@pytest.fixture()
def cache():
    r = redis.Redis(host="127.0.0.1", port=6379, db=15)
    try:
        r.ping()
    except redis.ConnectionError:
        require_server(False, "Redis on 127.0.0.1:6379")
    ns = f"cache{uuid.uuid4().hex[:8]}"
    yield QueryCache(r, ns, ttl_s=0.3)
    for k in r.scan_iter(f"{ns}:*"):
        r.delete(k)


def test_hits_misses_and_expiry(cache):
    calls = []

    def fn():
        calls.append(1)
        return {"rows": len(calls)}

    assert cache.cached(("q", 1), fn) == {"rows": 1}
    assert cache.cached(("q", 1), fn) == {"rows": 1}
    assert cache.cached(("q", 2), fn) == {"rows": 2}
    assert (cache.hits, cache.misses) == (1, 2)
    time.sleep(0.35)
    assert cache.cached(("q", 1), fn) == {"rows": 3}  # expired: recomputed
    assert cache.invalidate("q", 1) and not cache.invalidate("q", 99)


def test_cached_store_serves_repeated_history_queries(cache, pg_store):
    md = load_sample()
    t0 = int(md.span()[0])
    pg_store.ingest_market(md.select(symbols=["BTC"], start=t0, end=t0 + 86_400_000))
    cs = CachedStore(pg_store, cache)
    a = cs.load_market(["BTC"])
    b = cs.load_market(["BTC"])
    assert a.fingerprint() == b.fingerprint() and cache.hits == 1
    r1 = cs.rollup("candles_1h", "BTC")
    assert len(r1) == 24 and cs.rollup("candles_1h", "BTC").equals(r1) and cache.hits == 2
