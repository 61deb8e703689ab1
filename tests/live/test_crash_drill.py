"""End-to-end crash drill: real Redis, the fake exchange, separate processes, kill -9.

Two agents, the risk engine and two router replicas trade three symbols for
thousands of intents while the fake exchange replays the sample. Mid-run one
router replica and one agent are killed with SIGKILL and restarted. Then:
zero duplicate orders at the exchange, every intent decided, every approved
order either reached the exchange, was rejected or cancelled, the dead
agent's open orders cancelled, the risk audit gapless, positions reconciled.
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

from hlquant.audit.log import payloads, read_audit
from hlquant.connectors.replay import ReplayConnector
from hlquant.data.loaders import load_sample
from hlquant.fakeexchange.testing import running_fake_exchange
from tests.conftest import require_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def redis_ok():
    try:
        redis.Redis(host="127.0.0.1", port=6379).ping()
    except redis.ConnectionError:
        require_server(False, "Redis on 127.0.0.1:6379")


def spawn(args: list[str], out: Path, env: dict[str, str], tag: str) -> subprocess.Popen:
    log = open(out / f"{tag}.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "hlquant.cli", "component", *args], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_kill_dash_nine_router_and_agent(tmp_path, redis_ok):
    ns = f"drill{uuid.uuid4().hex[:8]}"
    r = redis.Redis(host="127.0.0.1", port=6379, db=14)
    md = load_sample()
    t0 = int(md.span()[0])
    md = md.select(start=t0, end=t0 + 24 * 3_600_000)
    with running_fake_exchange(cash=10_000_000.0) as fx:
        fx.server.faults.weight_per_min = 10**9  # this drill is about crashes, not rate limits
        env = {**os.environ, "HLQUANT_PRIVATE_KEY": fx.agent_key, "PYTHONPATH": str(ROOT)}
        common = ["strategy=drill", f"live.url={fx.url}", f"live.account_address={fx.master}",
                  f"live.namespace={ns}", "live.redis_url=redis://127.0.0.1:6379/14",
                  "live.claim_ttl_ms=3000", "live.dead_mans_switch_ms=0",
                  "risk.max_orders_per_s=20", "risk.order_burst=40", "router.exec_style=passive",
                  "router.orders_per_s=200", "router.burst=400"]

        def comp(kind: str, name: str | None = None) -> subprocess.Popen:
            tag = f"{kind}-{name}" if name else kind
            args = [kind, name] if name else [kind]
            return spawn([*args, *common, f"hydra.run.dir={tmp_path / tag}"], tmp_path, env, tag)

        procs = {"risk": comp("risk"), "r1": comp("router", "r1"), "r2": comp("router", "r2"),
                 "a1": comp("agent", "a1"), "a2": comp("agent", "a2")}
        time.sleep(4.0)  # processes import, connect and subscribe
        replay = fx.replay(iter(ReplayConnector(md)), speed=1800)
        try:
            time.sleep(7.0)
            procs["r1"].send_signal(signal.SIGKILL)
            procs["a1"].send_signal(signal.SIGKILL)
            killed_at = int(time.time() * 1000)
            procs["r1"].wait(5)
            procs["a1"].wait(5)
            time.sleep(4.0)  # a1's heartbeat (ttl 2 s) lapses; r2 takes over r1's pending orders
            procs["r1"] = comp("router", "r1")
            procs["a1"] = comp("agent", "a1")
            replay.result(timeout=120)
            time.sleep(3.0)  # let the last intents drain
        finally:
            for name in ("a1", "a2", "risk", "r1", "r2"):  # risk cancels on shutdown; routers last
                p = procs[name]
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(20)
                    except subprocess.TimeoutExpired:
                        p.kill()
                if name == "risk":
                    time.sleep(1.5)  # routers execute the shutdown cancels
        orders = list(fx.server.orders_received)
        acct = fx.server.accounts[fx.master.lower()]
        exchange_pos = {s: p.size for s, p in acct.venue._pos.items() if abs(p.size) > 1e-12}
        open_at_exchange = acct.venue.open_order_objects()

    logs = {p.name: p.read_text(errors="replace")[-3000:] for p in tmp_path.glob("*.log")}
    assert all(p.returncode is not None for p in procs.values())

    # 1. zero duplicate orders at the exchange
    cloids = [o["cloid"] for o in orders]
    assert len(cloids) > 100, logs
    assert len(cloids) == len(set(cloids)), "an order reached the exchange twice"

    # 2. every intent in the streams was decided by the risk engine
    risk_audit = read_audit(tmp_path / "risk" / "audit" / "risk")
    seq = risk_audit["seq"].to_numpy()
    assert seq[0] in (0, 1) and (seq[1:] - seq[:-1] == 1).all(), "risk audit has a gap"
    intents_in_streams = set()
    for sym in ("BTC", "ETH", "SOL"):
        for _id, fields in r.xrange(f"{ns}:Intent:{{{sym}}}"):
            from hlquant.bus.redis_state import unpack

            intents_in_streams.add(unpack(fields[b"d"]).intent_id)
    decisions = payloads(risk_audit[risk_audit["kind"] == "RiskDecision"])
    decided = {d["intent_id"] for d in decisions}
    assert len(intents_in_streams) > 1000, "the drill should produce thousands of intents"
    assert intents_in_streams <= decided, f"{len(intents_in_streams - decided)} intents never decided"

    # 3. every order the risk engine sent reached the exchange, was rejected, or was cancelled
    sent = {p["cloid"] for p in payloads(risk_audit[risk_audit["kind"] == "OrderRequest"])}
    at_exchange = set(cloids)
    acks = payloads(risk_audit[risk_audit["kind"] == "OrderAck"])
    rejected = {a["cloid"] for a in acks if a["status"] == "REJECTED"}
    unresolved = sent - at_exchange - rejected
    assert not unresolved, f"{len(unresolved)} approved orders never resolved"

    # 4. the killed agent was declared dead and its open orders cancelled
    losses = payloads(risk_audit[risk_audit["kind"] == "HeartbeatLoss"])
    dead = [x for x in losses if x["agent"] == "a1" and x["ts_exch"] >= killed_at]
    assert dead, "a1's heartbeat loss was not detected"
    cancelled_for_a1 = set(dead[0]["cancelled_orders"])
    cancel_reqs = {p["cloid"] for p in payloads(risk_audit[risk_audit["kind"] == "CancelRequest"])}
    assert cancelled_for_a1 <= cancel_reqs
    assert not [o for o in open_at_exchange if o.req.cloid in cancelled_for_a1]

    # 5. the router replica that survived took over what the dead one left
    r2_counters = logs.get("router-r2.log", "")
    assert "router r2:" in r2_counters

    # 6. positions reconcile between the risk process's book and the exchange
    status = risk_audit[risk_audit["kind"] == "Fill"]
    fills = payloads(status)
    book: dict[str, float] = {}
    for f in fills:
        book[f["symbol"]] = book.get(f["symbol"], 0.0) + (f["sz"] if f["side"] == "BUY" else -f["sz"])
    book = {s: v for s, v in book.items() if abs(v) > 1e-9}
    assert book == pytest.approx(exchange_pos, abs=1e-6), json.dumps({"book": book, "ex": exchange_pos})
    for k in r.scan_iter(f"{ns}:*"):
        r.delete(k)


@pytest.mark.slow
def test_hlquant_live_topology_processes_end_to_end(tmp_path, redis_ok):
    """`hlquant live live.topology=processes`: pre-flight, then supervised component processes."""
    ns = f"topo{uuid.uuid4().hex[:8]}"
    md = load_sample()
    t0 = int(md.span()[0])
    md = md.select(start=t0, end=t0 + 6 * 3_600_000)
    with running_fake_exchange(cash=10_000_000.0) as fx:
        fx.server.faults.weight_per_min = 10**9
        env = {**os.environ, "HLQUANT_PRIVATE_KEY": fx.agent_key, "PYTHONPATH": str(ROOT)}
        out = tmp_path / "live"
        fut = None
        p = subprocess.Popen(
            [sys.executable, "-m", "hlquant.cli", "live", "strategy=drill", "data.end=2026-01-06",
             f"live.url={fx.url}", f"live.account_address={fx.master}", f"live.namespace={ns}",
             "live.redis_url=redis://127.0.0.1:6379/14", "live.topology=processes", "live.duration_s=20",
             "live.dead_mans_switch_ms=0", f"hydra.run.dir={out}"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.time() + 60
            while time.time() < deadline and not (out / "health.json").exists():
                time.sleep(0.2)
            time.sleep(4.0)  # children import and subscribe
            fut = fx.replay(iter(ReplayConnector(md)), speed=1800)
            stdout, _ = p.communicate(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
            if fut is not None:
                fut.cancel()
        n_orders = len(fx.server.orders_received)
    assert p.returncode == 0, stdout[-3000:]
    assert "[PASS] risk config" in stdout and "[PASS] parity" in stdout and "[PASS] credentials" in stdout
    health = json.loads((out / "health.json").read_text())["children"]
    assert set(health) == {"router-r1", "router-r2", "risk", "agent-a1", "agent-a2"}
    assert all(c["state"] == "stopped" and c["restarts"] == 0 for c in health.values()), health
    assert n_orders > 0
    assert fx.agent_key[2:] not in stdout
    r = redis.Redis(host="127.0.0.1", port=6379, db=14)
    for k in r.scan_iter(f"{ns}:*"):
        r.delete(k)
