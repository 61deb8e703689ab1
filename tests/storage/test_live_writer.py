"""Live ingestion from Redis Streams: kill -9 the writer mid-stream, restart: no row lost or doubled."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid

import pytest
import redis

from hlquant.backtest.run import run_backtest
from hlquant.bus.redis_state import RedisStreamBus
from hlquant.config.compose import load_config
from hlquant.connectors.base import topic_for
from hlquant.connectors.replay import ReplayConnector
from hlquant.data.loaders import load_sample
from hlquant.storage.writer import publish_audit
from tests.conftest import require_server

from .conftest import DSN


@pytest.fixture()
def rds():
    r = redis.Redis(host="127.0.0.1", port=6379, db=11)
    try:
        r.ping()
    except redis.ConnectionError:
        require_server(False, "Redis on 127.0.0.1:6379")
    ns = f"w{uuid.uuid4().hex[:8]}"
    yield r, ns
    for k in r.scan_iter(f"{ns}:*"):
        r.delete(k)


def writer(ns: str, schema: str, session: str, batch: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hlquant.storage.writer", "--symbols", "BTC,ETH", "--sessions", session,
         "--redis", "redis://127.0.0.1:6379/11", "--namespace", ns, "--dsn", DSN, "--schema", schema,
         "--batch", str(batch), "--exit-when-idle", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def test_writer_crash_loses_and_doubles_nothing(pg_store, rds):
    r, ns = rds
    md = load_sample()
    t0 = int(md.span()[0])
    md = md.select(symbols=["BTC", "ETH"], start=t0, end=t0 + 8 * 3_600_000)
    bus = RedisStreamBus(r, ns, maxlen=10**7)
    events = list(ReplayConnector(md))
    res = run_backtest(load_config(["strategy=ma_cross", "progress=false", "strategy.symbols=[BTC,ETH]"]),
                       market=md)
    audit = res.audit.frame()
    session = str(audit["session"].iloc[0])
    w = writer(ns, pg_store.schema, session, batch=300)
    half = len(events) // 2
    bus.publish_many([(topic_for(e), e) for e in events[:half]])
    publish_audit(r, ns, session, audit)
    deadline = time.time() + 60
    while time.time() < deadline and pg_store.count("trades") < 2000:
        time.sleep(0.05)
    w.send_signal(signal.SIGKILL)  # mid-stream, possibly between commit and ack
    w.wait(10)
    written_at_kill = pg_store.count("trades")
    assert 0 < written_at_kill < len(md.trades)
    bus.publish_many([(topic_for(e), e) for e in events[half:]])
    w2 = writer(ns, pg_store.schema, session, batch=300)
    out, err = w2.communicate(timeout=180)
    assert w2.returncode == 0, err[-2000:]
    back = pg_store.load_market(["BTC", "ETH"])
    assert back.fingerprint() == md.fingerprint(), "every row exactly once"
    assert pg_store.count("audit") == len(audit)
    pending = sum(int(r.xpending(k, "writers")["pending"]) for k in r.scan_iter(f"{ns}:*"))
    assert pending == 0


def test_audit_mirror_reaches_postgres_through_the_stream(pg_store, rds):
    from hlquant.audit.log import AuditLog
    from hlquant.core.events import Intent
    from hlquant.storage.writer import StreamWriter, audit_mirror

    r, ns = rds
    audit = AuditLog(None, "risk", flush_every=50, mirror=audit_mirror(r, ns, "risk"))
    for i in range(120):
        audit.record(Intent(1_767_225_600_000 + i, 1_767_225_600_000 + i, f"a:BTC:{i}", "a", "BTC", target=0.1))
    audit.close()
    w = StreamWriter(r, pg_store, ["BTC"], ns, sessions=["risk"])
    res = w.run([False], batch=100, exit_when_idle_s=0.5)
    assert res["audit_rows"] == 120 and pg_store.count("audit") == 120
