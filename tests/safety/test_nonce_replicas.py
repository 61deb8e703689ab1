"""Nonces unique across router replicas (issue 11, item 7): two processes signing for one
account with one agent key, under a burst against the fake exchange, share a Redis
nonce sequence and never get "Invalid nonce"."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import redis

from hlquant.core.events import OrderRequest, Side, Tif
from hlquant.fakeexchange.testing import running_fake_exchange
from hlquant.hyperliquid.exchange import ExchangeClient
from hlquant.hyperliquid.info import InfoClient
from hlquant.hyperliquid.nonces import RedisNonceSource
from hlquant.hyperliquid.signing import NonceManager, Signer
from tests.conftest import require_server
from tests.hyperliquid.conftest import seed_books

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/15"
N_PER_REPLICA = 60

# One router replica: its own process, its own client, the shared nonce sequence.
REPLICA = r"""
import json, sys, time
import redis
from hlquant.core.events import OrderRequest, Side, Tif
from hlquant.hyperliquid.exchange import ExchangeClient
from hlquant.hyperliquid.info import InfoClient
from hlquant.hyperliquid.limits import WeightLimiter
from hlquant.hyperliquid.nonces import RedisNonceSource
from hlquant.hyperliquid.signing import Signer
url, key, master, ns, n, name = sys.argv[1:7]
signer = Signer(key, master)
info = InfoClient(url)
nonces = RedisNonceSource(redis.Redis.from_url(sys.argv[7]), signer.address, ns)
ex = ExchangeClient(signer, info.assets(), url, limiter=WeightLimiter(per_min=1e9), nonces=nonces)
out = []
for i in range(int(n)):
    t = int(time.time() * 1000)
    req = OrderRequest(t, t, "", name, "a", "BTC", Side.BUY, 0.001, 50_000.0 + i, Tif.GTC)
    try:
        st = ex.place([req])[0]
        out.append("ok" if "resting" in st else str(st))
    except Exception as e:
        out.append(str(e))
print(json.dumps(out))
"""


@pytest.fixture()
def rds():
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        require_server(False, "Redis on 127.0.0.1:6379")
    ns = f"nonce{uuid.uuid4().hex[:8]}"
    yield client, ns
    for k in client.scan_iter(f"{ns}:*"):
        client.delete(k)


@pytest.mark.redis
def test_two_replica_processes_share_one_nonce_sequence(rds):
    client, ns = rds
    with running_fake_exchange() as fx:
        fx.server.faults.weight_per_min = 10**9
        seed_books(fx.server)
        procs = [subprocess.Popen([sys.executable, "-c", REPLICA, fx.url, fx.agent_key, fx.master, ns,
                                   str(N_PER_REPLICA), f"r{i}", REDIS_URL], cwd=ROOT, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
                 for i in range(2)]
        results = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            results += json.loads(out.strip().splitlines()[-1])
        assert fx.server.counters["bad_nonce"] == 0
        assert [r for r in results if r != "ok"] == []
        assert len(fx.server.orders_received) == 2 * N_PER_REPLICA


@pytest.mark.redis
def test_shared_sequence_is_strictly_increasing_across_clients(rds):
    client, ns = rds
    a = RedisNonceSource(redis.Redis.from_url(REDIS_URL), "0xAgent", ns)
    b = RedisNonceSource(redis.Redis.from_url(REDIS_URL), "0xagent", ns)  # same signer, any case
    seen: list[int] = []
    lock = threading.Lock()

    def burst(src):
        got = [src.next() for _ in range(500)]
        with lock:
            seen.extend(got)
        assert got == sorted(got) and len(set(got)) == len(got)

    threads = [threading.Thread(target=burst, args=(s,)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1000  # no nonce handed out twice
    other = RedisNonceSource(client, "0xsomeoneelse", ns)
    assert other.key != a.key  # one sequence per signer


def test_separate_per_process_counters_collide_in_one_millisecond():
    """What the shared sequence fixes: two replicas with their own counter and the same
    clock reading sign with the same nonce, and the exchange refuses the second."""
    with running_fake_exchange() as fx:
        seed_books(fx.server)
        info = InfoClient(fx.url)
        frozen = fx.server.clock.now_ms()
        clients = [ExchangeClient(Signer(fx.agent_key, fx.master), info.assets(), fx.url,
                                  nonces=NonceManager(clock_ms=lambda: frozen)) for _ in range(2)]
        t = frozen
        req = OrderRequest(t, t, "", "i", "a", "BTC", Side.BUY, 0.001, 50_000.0, Tif.GTC)
        assert "resting" in clients[0].place([req])[0]
        with pytest.raises(Exception, match="Invalid nonce"):
            clients[1].place([req])
