"""End-to-end crash drill: real Redis, the fake exchange, separate processes, kill -9.

The whole multi-process topology runs (one ingest connection, a stream
processor, two agents, the risk process, two router replicas) while the fake
exchange replays the sample. Mid-run one router replica and one agent are
killed with SIGKILL and restarted; later the risk process is killed with SIGKILL
and restarted (it adopts the exchange's positions and resumes its streams).
Every wait is for a condition on the shared state, with a deadline
(``hlquant.live.drill``). Then, from the audit logs and the records the
components mirrored to Redis (``hlquant audit verify``): zero duplicate orders
at the exchange, every intent decided, every order approved, every approved
order at the exchange, rejected or cancelled before it was sent, the dead
agent's open orders cancelled, no lost audit record, positions equal to the
exchange's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from hlquant.audit.verify import load_records, verify
from hlquant.bus.redis_state import unpack
from hlquant.connectors.replay import ReplayConnector
from hlquant.data.loaders import load_sample
from hlquant.fakeexchange.testing import running_fake_exchange
from hlquant.live.drill import Drill, wait_for
from tests.live.conftest import processes_session, start_drill

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ["BTC", "ETH", "SOL"]
REDIS_URL = "redis://127.0.0.1:6379/14"


def intents_in_streams(r: redis.Redis, ns: str) -> set[str]:
    out = set()
    for sym in SYMBOLS:
        for _id, fields in r.xrange(f"{ns}:Intent:{{{sym}}}"):
            out.add(unpack(fields[b"d"]).intent_id)
    return out


@pytest.mark.slow
@pytest.mark.redis
def test_kill_dash_nine_router_and_agent(tmp_path, redis_ok):
    ns = f"drill{uuid.uuid4().hex[:8]}"
    md = load_sample()
    t0 = int(md.span()[0])
    md = md.select(start=t0, end=t0 + 24 * 3_600_000)
    with running_fake_exchange(cash=10_000_000.0) as fx:
        fx.server.faults.weight_per_min = 10**9  # this drill is about crashes, not rate limits
        env = {**os.environ, "HLQUANT_PRIVATE_KEY": fx.agent_key, "PYTHONPATH": str(ROOT)}
        common = ["strategy=drill", f"live.url={fx.url}", f"live.account_address={fx.master}",
                  f"live.namespace={ns}", f"live.redis_url={REDIS_URL}",
                  "live.claim_ttl_ms=3000", "live.dead_mans_switch_ms=0",
                  "risk.max_orders_per_s=20", "risk.order_burst=40", "router.exec_style=passive",
                  "router.orders_per_s=200", "router.burst=400"]
        drill = Drill(common, tmp_path, ns, REDIS_URL, ["a1", "a2"], SYMBOLS, env=env, cwd=ROOT)
        r = drill.r
        replay = None
        try:
            start_drill(drill, fx)
            replay = fx.replay(iter(ReplayConnector(md)), speed=1800)
            wait_for(lambda: len(fx.server.orders_received) > 100, 90, "orders flowing",
                     state=lambda: drill.backlog())
            drill.kill("router-r1")
            drill.kill("agent-a1")
            killed_at = int(time.time() * 1000)
            # the risk process notices a1's heartbeat loss (ttl 2 s) and removes its intents
            wait_for(lambda: not any(r.hexists(f"{ns}:intent:{{{s}}}", "a1") for s in SYMBOLS), 30,
                     "a1's heartbeat loss acted on")
            drill.start("router-r1")
            drill.start("agent-a1")
            n_orders = len(fx.server.orders_received)
            wait_for(lambda: len(fx.server.orders_received) > n_orders + 50, 90, "orders flowing again")
            drill.kill("risk")  # with decisions in its buffer and intents in flight
            drill.start("risk")
            replay.result(timeout=180)
            wait_for(drill.idle, 120, "every stream drained and acknowledged", state=drill.backlog)
            book = drill.account()["positions"]  # the restarted risk process's book
        finally:
            if replay is not None:
                replay.cancel()
            drill.stop_all()
        logs = drill.logs()
        orders = list(fx.server.orders_received)
        acct = fx.server.accounts[fx.master.lower()]
        exchange_pos = {s: q for s, q in acct.venue.positions().items() if abs(q) > 1e-12}
        open_at_exchange = acct.venue.open_order_objects()
        streamed = intents_in_streams(r, ns)
        report = verify(tmp_path, REDIS_URL, ns)
        records = load_records(tmp_path, REDIS_URL, ns)
        cli = subprocess.run([sys.executable, "-m", "hlquant.cli", "audit", "verify", str(tmp_path),
                              "--redis", REDIS_URL, "--namespace", ns], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        drill.cleanup()

    assert not [t for t, rc in drill.dead().items() if rc not in (0, -signal.SIGTERM)], logs

    # 1. zero duplicate orders at the exchange
    cloids = [o["cloid"] for o in orders]
    assert len(cloids) > 100, logs
    assert len(cloids) == len(set(cloids)), "an order reached the exchange twice"

    # 2. the record is complete: every intent decided, every order approved, every fill ours,
    #    nothing lost -- the risk process's decisions made before kill -9 reached its audit
    #    stream before anything acted on them (`hlquant audit verify`)
    assert report.ok, str(report)
    assert cli.returncode == 0 and "audit complete" in cli.stdout, cli.stdout + cli.stderr
    decided = {d["intent_id"] for d in records if d["kind"] == "RiskDecision"}
    assert len(streamed) > 1000, "the drill should produce thousands of intents"
    assert streamed <= decided, f"{len(streamed - decided)} intents never decided"

    # 3. every order the risk engine approved reached the exchange, was rejected, or was
    #    cancelled before it was sent (shutdown, or its agent died first) -- never lost
    sent = {p["cloid"] for p in records if p["kind"] == "OrderRequest" and p["agent"] != "adopted"}
    settled = {a["cloid"] for a in records if a["kind"] == "OrderAck" and a["status"] in ("REJECTED", "CANCELED")}
    unresolved = sent - set(cloids) - settled
    assert not unresolved, f"{len(unresolved)} approved orders never resolved"

    # 4. the killed agent was declared dead and its open orders cancelled
    losses = [x for x in records if x["kind"] == "HeartbeatLoss"]
    dead = [x for x in losses if x["agent"] == "a1" and x["ts_exch"] >= killed_at]
    assert dead, "a1's heartbeat loss was not detected"
    cancelled_for_a1 = set(dead[0]["cancelled_orders"])
    cancel_reqs = {p["cloid"] for p in records if p["kind"] == "CancelRequest"}
    assert cancelled_for_a1 <= cancel_reqs
    assert not [o for o in open_at_exchange if o.req.cloid in cancelled_for_a1]

    # 5. the router replica that survived took over what the dead one left
    assert "router r2:" in logs.get("router-r2", "")

    # 6. the restarted risk process's book (positions it adopted from the exchange, plus the
    #    fills since) equals the exchange's
    book = {s: v for s, v in book.items() if abs(v) > 1e-9}
    assert book == pytest.approx(exchange_pos, abs=1e-6), json.dumps({"book": book, "ex": exchange_pos})


@pytest.mark.slow
@pytest.mark.redis
def test_hlquant_live_topology_processes_end_to_end(tmp_path, redis_ok):
    """`hlquant live live.topology=processes`: pre-flight, then every role as a supervised process,
    with one market-data connection however many agents run."""
    ns = f"topo{uuid.uuid4().hex[:8]}"
    out = tmp_path / "live"
    with running_fake_exchange(cash=10_000_000.0) as fx:
        fx.server.faults.weight_per_min = 10**9
        with processes_session(fx, ns, REDIS_URL, out, tmp_path / "probe") as p:
            wait_for(lambda: len(fx.server.orders_received) > 0, 60, "orders reach the exchange")
            stdout, _ = p.communicate(timeout=120)
        n_orders = len(fx.server.orders_received)
        ws_connections = fx.server.counters["ws_connections"]
    assert p.returncode == 0, stdout[-3000:]
    assert "[PASS] risk config" in stdout and "[PASS] parity" in stdout and "[PASS] credentials" in stdout
    health = json.loads((out / "health.json").read_text())["children"]
    assert set(health) == {"router-r1", "router-r2", "risk", "ingest", "features-f1", "agent-a1", "agent-a2"}
    assert all(c["state"] == "stopped" and c["restarts"] == 0 for c in health.values()), health
    assert n_orders > 0
    # one market-data connection (ingest) plus the risk process's user channel; agents open none
    assert ws_connections == 2
    assert fx.agent_key[2:] not in stdout
