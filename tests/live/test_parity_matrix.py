"""Parity matrix: the same recorded market events through (a) the backtest, (b) the
single-process live engine and (c) the multi-process topology against the fake exchange.

Intents, risk decisions and fills must be identical (ids, sizes, prices; wall-clock
fields aside). When they differ the test names the first divergence: which record,
which component, both values, and the market event just before it.

(c) runs every role as its own OS process on Redis with ``live.clock=event``: the test
plays the ingest role, putting each recorded event on the exchange (the fake, its clock
pinned to the event) and on the bus, then waits until every stream is drained and every
fill the exchange made has reached the risk process, before the next event (lockstep).
Agents that decide on the *same* event and symbol race each other across processes (which
intent the risk engine nets first is up to the scheduler), so the processes case runs the
``parity`` strategy, which has every trigger and an account-dependent agent with one
agent per symbol and trigger time; (a) == (b) covers every bundled strategy.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from hlquant.audit.log import payloads, read_audit
from hlquant.backtest.engine import Backtest
from hlquant.bus.redis_state import RedisStreamBus
from hlquant.config.compose import load_config
from hlquant.config.spec import KernelSpec
from hlquant.connectors.base import topic_for
from hlquant.connectors.replay import ReplayConnector
from hlquant.data.loaders import load_sample
from hlquant.fakeexchange.testing import running_fake_exchange
from hlquant.live.drill import Drill, wait_for
from hlquant.live.engine import replay_market

ROOT = Path(__file__).resolve().parents[2]
CONF = Path(__file__).resolve().parent / "conf"
REDIS_URL = "redis://127.0.0.1:6379/12"
BUNDLED = ["ma_cross", "momentum_meanrev", "funding_carry", "drill"]


def overrides(strategy: str) -> list[str]:
    extra = {"ma_cross": ["strategy.fast=3", "strategy.slow=8"],
             "momentum_meanrev": ["strategy.lookback=10", "strategy.window=10", "strategy.z=1.0"],
             "funding_carry": ["strategy.threshold=0.0", "strategy.span=2"],
             "drill": [], "parity": [f"hydra.searchpath=[file://{CONF}]"]}[strategy]
    return [f"strategy={strategy}", *extra]


def market(hours: float = 2.0, trade_every: int = 4):
    """Two hours of the sample (candles, trades, L2, funding); every 4th trade kept so the
    lockstep run stays short. The same events feed every mode."""
    md = load_sample()
    t0 = int(md.span()[0])
    md = md.select(start=t0, end=t0 + int(hours * 3_600_000))
    return md.thin_trades(trade_every)


# --- what is compared ----------------------------------------------------------------
def records(audit) -> dict[str, list[tuple]]:
    """Intents, risk decisions and fills of an audit frame, canonically ordered."""
    p = payloads(audit)
    intents = sorted((r["ts_exch"], r["intent_id"], r["agent"], r["symbol"], r["target"], r["side"],
                      r["size"], r["px"], r["tif"], r["reduce_only"], r["trigger_px"])
                     for r in p if r["kind"] == "Intent")
    decisions = sorted((r["ts_exch"], r["intent_id"], r["symbol"], r["approved"], r["code"], r["limit"],
                        round(r["order_size"], 10)) for r in p if r["kind"] == "RiskDecision")
    fills = sorted((r["ts_exch"], r["symbol"], r["cloid"], r["side"], round(r["px"], 8), round(r["sz"], 10),
                    round(r["fee"], 8)) for r in p if r["kind"] == "Fill")
    return {"intent": intents, "risk decision": decisions, "fill": fills}


def first_divergence(name_a: str, a: dict, name_b: str, b: dict, events) -> str:
    """'' when identical, else the first differing record with the market event before it."""
    for what, comp in (("intent", "agent"), ("risk decision", "risk"), ("fill", "venue")):
        xa, xb = a[what], b[what]
        for i in range(max(len(xa), len(xb))):
            va = xa[i] if i < len(xa) else None
            vb = xb[i] if i < len(xb) else None
            if va != vb:
                ts = (va or vb)[0]
                ev = next((e for e in reversed(events) if e.ts_exch <= ts), None)
                return (f"first divergence in {what}s ({comp}) #{i} at ts {ts}:\n  {name_a}: {va}\n"
                        f"  {name_b}: {vb}\n  after market event: {ev}")
    return ""


def backtest_records(cfg: dict, md) -> dict:
    res = Backtest(md, spec=KernelSpec.from_config(cfg, mode="sim")).run()
    return records(res.audit.frame())


def engine_records(cfg: dict, md) -> dict:
    return records(replay_market(KernelSpec.from_config(cfg, mode="paper"), md).audit.frame())


@pytest.mark.parametrize("strategy", [*BUNDLED, "parity"])
def test_backtest_equals_single_process_live_engine(strategy):
    md = market()
    cfg = load_config(overrides(strategy))
    a, b = backtest_records(cfg, md), engine_records(cfg, md)
    assert len(a["intent"]) >= 3 and len(a["fill"]) >= 2, {k: len(v) for k, v in a.items()}
    diff = first_divergence("backtest", a, "live engine", b, list(ReplayConnector(md)))
    assert not diff, diff


def test_parity_strategy_exercises_every_trigger_and_the_account():
    cfg = load_config(overrides("parity"))
    a = backtest_records(cfg, market())
    agents = {r[2] for r in a["intent"]}
    assert agents == {"ma", "book", "carry", "stepper", "trend"}, agents
    stepper = [r for r in a["intent"] if r[2] == "stepper"]
    assert {r[5] for r in stepper} == {"BUY", "SELL"}  # it buys, then sells what it holds


@pytest.mark.slow
@pytest.mark.redis
def test_multi_process_topology_equals_backtest(tmp_path, redis_ok):
    md = market()
    events = list(ReplayConnector(md))
    cfg = load_config(overrides("parity"))
    expected = backtest_records(cfg, md)
    ns = f"par{uuid.uuid4().hex[:8]}"
    agents = [a["name"] for a in cfg["strategy"]["agents"]]
    with running_fake_exchange(cash=cfg["venue"]["initial_cash"]) as fx:
        fx.server.faults.weight_per_min = 10**9
        acct = fx.server.accounts[fx.master.lower()]
        env = {**os.environ, "HLQUANT_PRIVATE_KEY": fx.agent_key, "PYTHONPATH": str(ROOT)}
        common = [*overrides("parity"), f"live.url={fx.url}", f"live.account_address={fx.master}",
                  f"live.namespace={ns}", f"live.redis_url={REDIS_URL}", "live.clock=event",
                  "live.dead_mans_switch_ms=0", "live.account_max_age_ms=86400000", "live.router_replicas=1"]
        drill = Drill(common, tmp_path, ns, REDIS_URL, agents, sorted(md.symbols), routers=1, env=env, cwd=ROOT)
        drill.start("risk")
        drill.start("router-r1")
        drill.start("features-f1")
        for a in agents:
            drill.start(f"agent-{a}")
        bus = RedisStreamBus(drill.r, ns)
        try:
            wait_for(drill.ready, 90, "every role subscribed", state=lambda: (drill.dead(), drill.logs(800)))
            wait_for(lambda: fx.server.counters["ws_connections"] >= 1, 30, "risk's user channel connected")

            def settled() -> bool:
                return drill.idle() and drill.account().get("fills", 0) == len(acct.fills)

            for ev in events:
                fx.server.clock.pin(ev.ts_exch)
                fx.server.publish(ev)
                bus.publish(topic_for(ev), ev)
                wait_for(settled, 60, f"the system settled after {ev}", poll_s=0.005,
                         state=lambda: (drill.backlog(), drill.account(), len(acct.fills), drill.dead()))
        finally:
            drill.stop_all()
            fx.server.clock.pin(None)
            drill.cleanup()
    logs = drill.logs()
    assert not [t for t, rc in drill.dead().items() if rc not in (0, -15)], logs
    frames = [read_audit(tmp_path / "risk" / "audit" / "risk")]
    frames += [read_audit(tmp_path / f"agent-{a}" / "audit" / f"agent-{a}") for a in agents]
    import pandas as pd

    got = records(pd.concat(frames, ignore_index=True))
    assert len(expected["fill"]) > 2
    diff = first_divergence("backtest", expected, "processes", got, events)
    assert not diff, diff
