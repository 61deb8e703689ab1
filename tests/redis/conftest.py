from __future__ import annotations

import uuid

import pytest
import redis
from redis.cluster import RedisCluster

from tests.conftest import require_server


@pytest.fixture()
def ns() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def _cleanup(client, ns: str) -> None:
    if isinstance(client, RedisCluster):
        for node in client.get_primaries():
            r = client.get_redis_connection(node)
            for k in r.scan_iter(f"{ns}:*", count=1000):
                r.delete(k)
    else:
        for k in client.scan_iter(f"{ns}:*", count=1000):
            client.delete(k)


@pytest.fixture()
def r(ns):
    client = redis.Redis(host="127.0.0.1", port=6379, db=15)
    try:
        client.ping()
    except redis.ConnectionError:
        require_server(False, "Redis on 127.0.0.1:6379")
    yield client
    _cleanup(client, ns)


@pytest.fixture(params=["single", "cluster"])
def any_redis(request, ns):
    if request.param == "single":
        client = redis.Redis(host="127.0.0.1", port=6379, db=15)
        what = "Redis on 127.0.0.1:6379"
    else:
        client = None
        what = "the 3-node Redis Cluster on 127.0.0.1:7100 (scripts/services.sh)"
        try:
            client = RedisCluster(host="127.0.0.1", port=7100)
        except Exception:
            client = None
    try:
        ok = client is not None and client.ping()
    except Exception:
        ok = False
    if not ok:
        require_server(False, what)
    yield client
    _cleanup(client, ns)
