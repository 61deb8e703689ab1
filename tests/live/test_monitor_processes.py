"""The supervisor's page for ``live.topology=processes``: the state read from the shared Redis.

What the processes publish (the risk process's account read model, the agents'
heartbeats, the components' audit streams, the market streams) is put into Redis here
exactly as they write it, and the page served by ``fleet_monitor`` (what the supervisor
runs) must show it; then ``hlquant live live.topology=processes`` end to end serves it
while the components run.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from pathlib import Path

import aiohttp
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from hlquant.audit.log import AuditLog
from hlquant.bus.redis_state import RedisAccountPublisher, RedisHeartbeats, RedisStreamBus
from hlquant.config.compose import load_config
from hlquant.core.events import (
    Fill,
    FundingPayment,
    KillSwitch,
    RiskCode,
    RiskDecision,
    Side,
    Trade,
)
from hlquant.fakeexchange.testing import free_port, running_fake_exchange
from hlquant.live.drill import wait_for
from hlquant.live.monitor import fleet_monitor
from hlquant.live.supervisor import Supervisor
from hlquant.portfolio.portfolio import Portfolio
from hlquant.storage.writer import publish_audit
from tests.conftest import require_server
from tests.live.conftest import processes_session

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture()
def r():
    try:
        client = redis.Redis.from_url(REDIS_URL)
        client.ping()
    except redis.ConnectionError:
        require_server(False, "Redis on 127.0.0.1:6379")
    yield client


def _cleanup(r, ns: str) -> None:
    keys = list(r.scan_iter(match=f"{ns}:*", count=1000))
    if keys:
        r.delete(*keys)


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[str, str]:
    async with session.get(url) as resp:
        return resp.headers.get("Content-Type", ""), await resp.text()


@pytest.mark.redis
def test_page_shows_the_shared_redis_state(r):
    ns = f"mon{uuid.uuid4().hex[:8]}"
    now = int(time.time() * 1000)
    cfg = load_config(["mode=live", "strategy=ma_cross", "strategy.symbols=[BTC]", f"live.redis_url={REDIS_URL}",
                       f"live.namespace={ns}", "monitor.port=0"])
    pf = Portfolio(100_000.0)
    fill = Fill(now - 50, now - 40, "BTC", "0x" + "a" * 32, 1, Side.BUY, 90_000.0, 0.1, 4.05, "taker", 1, "ma")
    pf.on_fill(fill)
    pf.mark("BTC", 90_500.0)
    RedisAccountPublisher(r, ns).publish(now, pf, [], fills=1)
    hb = RedisHeartbeats(r, ns)
    hb.beat("ma", now, 60_000)
    hb.beat("old", now - 100_000, 1_000)
    audit = AuditLog(None, "risk", flush_every=10**6, mirror=lambda rows: publish_audit(r, ns, "risk", rows))
    audit.record(RiskDecision(now - 60, now - 60, "ma:BTC:1:1", "ma", "BTC", True, "target", 0.1))
    audit.record(fill)
    audit.record(RiskDecision(now - 30, now - 30, "ma:BTC:2:2", "ma", "BTC", False, "stale price", 0.0,
                              RiskCode.STALE_PRICE))
    audit.record(FundingPayment(now - 20, now - 20, "BTC", 0.0001, 0.1, 90_000.0, -0.9))
    audit.record(KillSwitch(now - 10, now - 10, "max_drawdown 50% reached"))
    audit.flush()
    RedisStreamBus(r, ns).publish("Trade:{BTC}", Trade(now - 7, now - 2, "BTC", Side.BUY, 90_500.0, 0.2))
    sup = Supervisor()
    sup.add_task("agent-ma", lambda: asyncio.sleep(0))

    async def main() -> tuple[dict, dict, str]:
        async with fleet_monitor(cfg, sup) as server, aiohttp.ClientSession() as http:
            assert server is not None and server.url.startswith("http://127.0.0.1:")
            first = json.loads((await _get(http, server.url + "api/state"))[1])
            audit.record(Fill(now, now, "BTC", "0x" + "b" * 32, 2, Side.SELL, 90_600.0, 0.05, 2.0, "taker", 2, "ma"))
            audit.flush()
            second = json.loads((await _get(http, server.url + "api/state"))[1])
            ctype, metrics = await _get(http, server.url + "metrics")
            assert ctype.startswith("text/plain")
            page = (await _get(http, server.url))[1]
            assert "EventSource" in page
            return first, second, metrics

    try:
        first, second, metrics = asyncio.run(main())
    finally:
        _cleanup(r, ns)
    assert first["topology"] == "processes" and first["strategy"] == "ma_cross"
    assert first["equity"] == pytest.approx(pf.equity())
    (pos,) = first["positions"]
    assert pos["symbol"] == "BTC" and pos["size"] == pytest.approx(0.1) and pos["mark"] == 90_500.0
    assert first["fills_total"] == 1 and first["pnl"]["fees"] == pytest.approx(4.05)
    assert first["pnl"]["funding"] == pytest.approx(-0.9)
    assert first["risk"]["killed"] is True and first["risk"]["rejections"] == {"STALE_PRICE": 1}
    assert {a["name"]: a["alive"] for a in first["agents"]} == {"ma": True, "old": False}
    assert first["feed"]["lag_ms"]["last"] == 5
    assert first["processes"]["agent-ma"]["state"] == "new"
    assert [a["kind"] for a in first["audit"]][:2] == ["KillSwitch", "FundingPayment"]
    # the audit streams are tailed: a new fill adds to the totals, nothing is counted twice
    assert second["fills_total"] == 2 and second["pnl"]["fees"] == pytest.approx(6.05)
    assert second["risk"]["decisions"] == {"APPROVED": 1, "STALE_PRICE": 1}
    fams = {f.name: f for f in text_string_to_metric_families(metrics)}
    assert fams["hlquant_kill_switch"].samples[0].value == 1.0
    alive = {s.labels["agent"]: s.value for s in fams["hlquant_agent_alive"].samples}
    assert alive == {"ma": 1.0, "old": 0.0}
    assert fams["hlquant_fills"].samples[0].value == 2.0


@pytest.mark.slow
@pytest.mark.redis
def test_supervisor_serves_the_page_while_components_run(tmp_path, r):
    """`hlquant live live.topology=processes`: the supervisor's page shows fills and agents
    while the role processes trade against the fake exchange."""
    ns = f"montopo{uuid.uuid4().hex[:8]}"
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with running_fake_exchange(cash=10_000_000.0) as fx:
        fx.server.faults.weight_per_min = 10**9
        with processes_session(fx, ns, REDIS_URL, tmp_path / "live", tmp_path / "probe",
                               f"monitor.port={port}") as p:
            def state() -> dict:
                with urllib.request.urlopen(url + "api/state", timeout=5) as resp:
                    return json.loads(resp.read())

            s = wait_for(lambda: (st := state())["fills_total"] > 0 and st["equity"] is not None and st, 60,
                         "fills on the supervisor's page")
            stdout, _ = p.communicate(timeout=120)
        _cleanup(r, ns)
    assert p.returncode == 0, stdout[-3000:]
    assert s["topology"] == "processes"
    assert {"a1", "a2"} <= {a["name"] for a in s["agents"]}
    assert set(s["processes"]) == {"router-r1", "router-r2", "risk", "ingest", "features-f1", "agent-a1", "agent-a2"}
    assert s["fills"] and s["fills"][0]["symbol"] in ("BTC", "ETH", "SOL")
