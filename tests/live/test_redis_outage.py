"""Redis goes away and comes back: role processes ride it out without a traceback storm.

A private Redis server (its own port) backs a stream processor and an agent; it is
shut down mid-run and started again, empty, like a restarted cache. The processes
stay up, each logs one line when Redis goes and one when it is back (no traceback),
and the data path works again afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import redis

from hlquant.bus.redis_state import RedisStreamBus
from hlquant.connectors.base import topic_for
from hlquant.connectors.replay import ReplayConnector
from hlquant.data.loaders import load_sample
from hlquant.fakeexchange.testing import free_port
from hlquant.live.drill import Drill, wait_for
from tests.conftest import require_server

ROOT = Path(__file__).resolve().parents[2]


def start_redis(port: int, d: Path) -> subprocess.Popen:
    exe = shutil.which("redis-server")
    if exe is None:
        require_server(False, "redis-server (the binary, to start a private instance)")
    p = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                          "--dir", str(d)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    wait_for(lambda: _ping(client), 10, f"redis on {port} up")
    return p


def _ping(c: redis.Redis) -> bool:
    try:
        return bool(c.ping())
    except redis.ConnectionError:
        return False


@pytest.mark.slow
@pytest.mark.redis
def test_roles_reconnect_with_backoff_and_log_one_line_per_outage(tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = start_redis(port, tmp_path)
    ns = f"out{uuid.uuid4().hex[:6]}"
    md = load_sample()
    t0 = int(md.span()[0])
    events = list(ReplayConnector(md.select(symbols=["BTC"], start=t0, end=t0 + 40 * 60_000).thin_trades(10)))
    overrides = ["strategy=ma_cross", "strategy.symbols=[BTC]", "strategy.fast=3", "strategy.slow=8",
                 "live.url=http://127.0.0.1:9", f"live.namespace={ns}", f"live.redis_url={url}",
                 "live.clock=event", "live.claim_ttl_ms=2000"]
    drill = Drill(overrides, tmp_path / "run", ns, url, ["ma_cross"], ["BTC"], routers=0, features=1,
                  env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    bus = RedisStreamBus(drill.r, ns)
    try:
        drill.start("features-f1")
        drill.start("agent-ma_cross")
        wait_for(lambda: drill.r.exists(f"{ns}:flease:{{BTC}}"), 60, "BTC leased", state=lambda: drill.logs(500))
        bus.publish_many([(topic_for(ev), ev) for ev in events[:20]])
        wait_for(drill.idle, 30, "first events processed", state=drill.backlog)
        redis.Redis(port=port).shutdown(nosave=True)
        server.wait(10)
        # both processes notice (their next read fails) and wait with backoff
        wait_for(lambda: all("redis unavailable" in drill.logs().get(t, "") for t in ("features-f1", "agent-ma_cross")),
                 30, "the outage noticed")
        assert not drill.dead(), drill.logs()
        server = start_redis(port, tmp_path)  # back, and empty, like a restarted cache
        wait_for(lambda: all("redis back" in drill.logs().get(t, "") for t in ("features-f1", "agent-ma_cross")),
                 30, "reconnected", state=drill.logs)
        wait_for(lambda: drill.r.exists(f"{ns}:flease:{{BTC}}"), 30, "BTC leased again")
        wait_for(lambda: "c0" in drill._consumers("FeaturesReady:{BTC}", "agent-ma_cross"), 30,
                 "the agent's group made again",
                 state=lambda: (drill.r.keys(f"{ns}:*"), drill.r.xinfo_groups(f"{ns}:FeaturesReady:{{BTC}}")
                                if drill.r.exists(f"{ns}:FeaturesReady:{{BTC}}") else None))
        bus.publish_many([(topic_for(ev), ev) for ev in events[20:]])
        wait_for(lambda: drill.r.xlen(f"{ns}:FeaturesReady:{{BTC}}") > 0 and drill.idle(), 30,
                 "the data path works again", state=drill.backlog)
        assert not drill.dead()
    finally:
        drill.stop_all()
        logs = drill.logs(20_000)
        server.terminate()
        server.wait(10)
    for tag in ("features-f1", "agent-ma_cross"):
        text = logs[tag]
        assert text.count("redis unavailable") == 1 and text.count("redis back") == 1, text[-3000:]
        assert "Traceback" not in text, text[-3000:]
