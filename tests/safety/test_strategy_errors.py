"""A strategy bug or a nonsensical intent never becomes an order, and never erases the record.

Issue 11, items 3 and 4: ``Context`` and the risk engine refuse anything that is not an
order; an exception (or a non-intent) from ``decide()`` is contained by the runner,
audited as an ``AgentError``, and the policy decides: ``raise`` stops a research run with
one line, ``quarantine`` (paper/live) retires the agent, cancelling its intents and
orders, while the others go on. The audit log is flushed on every way out.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from hlquant.agents import AgentConfig
from hlquant.agents.base import Context
from hlquant.audit.log import AuditLog, payloads, read_audit
from hlquant.backtest.engine import Backtest
from hlquant.config.compose import load_config
from hlquant.config.spec import KernelSpec
from hlquant.core.clock import SimClock
from hlquant.core.errors import AgentFailure, IntentError
from hlquant.core.events import Intent, RiskCode, Side
from hlquant.data.loaders import load_sample
from hlquant.live.engine import replay_market
from tests.conftest import RecordingVenue
from tests.safety.broken_agents import BreaksOnBar, Flipper

ROOT = Path(__file__).resolve().parents[2]
CONF = Path(__file__).resolve().parent / "conf"


@pytest.fixture(scope="module")
def market():
    md = load_sample()
    t0 = int(md.span()[0])
    return md.select(symbols=["BTC", "ETH"], start=t0, end=t0 + 3 * 3_600_000)


def ctx() -> Context:
    c = Context(Flipper(AgentConfig("f", ("BTC",))), None, None, lambda s: 100.0)
    c.symbol, c.now = "BTC", 1
    return c


@pytest.mark.parametrize("call", [
    lambda c: c.order("hold", 0.01),          # an unknown side is not a sell
    lambda c: c.order("buy", -1.0),           # a negative size does not flip the side
    lambda c: c.order("buy", 0.0),
    lambda c: c.order("buy", math.nan),       # NaN passed every limit and crashed in rounding
    lambda c: c.order("buy", math.inf),
    lambda c: c.order("buy", 1.0, px=math.nan),
    lambda c: c.order("buy", 1.0, px=0.0),
    lambda c: c.order("buy", 1.0, px=-5.0),
    lambda c: c.order("buy", 1.0, tif="FOK"),
    lambda c: c.order("buy", 1.0, trigger_px=0.0, tpsl="sl"),
    lambda c: c.target(math.nan),
])
def test_context_refuses_what_is_not_an_order(call):
    with pytest.raises(IntentError):
        call(ctx())


def test_risk_engine_refuses_invalid_intents_from_anywhere():
    """Intents also arrive from other processes: the risk engine checks them itself."""
    from hlquant.agents.blackboard import InMemoryBlackboard, InMemoryHeartbeats
    from hlquant.portfolio.portfolio import Portfolio
    from hlquant.risk.engine import RiskConfig, RiskEngine
    from hlquant.router.idempotency import InMemoryIdempotencyStore
    from hlquant.router.router import OrderRouter

    venue, clock, audit = RecordingVenue(), SimClock(1_000), AuditLog(None, "t")
    router = OrderRouter(venue, InMemoryIdempotencyStore(), clock, audit)
    eng = RiskEngine(RiskConfig(), InMemoryBlackboard(), InMemoryHeartbeats(), Portfolio(), router, audit, clock)
    eng.on_price("BTC", 100_000.0, clock.t)
    bad = [
        Intent(1, 1, "i1", "a", "BTC", side=None, size=1.0),
        Intent(1, 1, "i2", "a", "BTC", side=Side.BUY, size=math.nan),
        Intent(1, 1, "i3", "a", "BTC", side=Side.BUY, size=-1.0),
        Intent(1, 1, "i4", "a", "BTC", side=Side.BUY, size=0.01, px=0.0),
        Intent(1, 1, "i5", "a", "BTC", target=math.inf),
        Intent(1, 1, "i6", "a", "DOGE", target=1.0),
    ]
    for it in bad:
        d = eng.on_intent(it)
        assert not d.approved and d.code is RiskCode.INVALID_INTENT, (it, d)
    router.flush()
    assert venue.submitted == []
    recorded = [p for p in payloads(audit.frame()) if p["kind"] == "RiskDecision"]
    assert len(recorded) == len(bad) and all(p["code"] == "INVALID_INTENT" for p in recorded)


@pytest.mark.parametrize("how", ["raise", "wrong_type", "bad_side"])
def test_research_run_stops_with_one_line_and_keeps_the_evidence(market, tmp_path, how):
    agents = [Flipper(AgentConfig("healthy", ("ETH",))),
              BreaksOnBar(AgentConfig("buggy", ("BTC",), params={"how": how}))]
    with pytest.raises(AgentFailure) as e:
        Backtest(market, agents, out_dir=tmp_path, staleness={"default": 120_000}).run()
    assert "buggy" in str(e.value) and "\n" not in str(e.value)
    audit = payloads(read_audit(tmp_path / "audit"))  # flushed although the run crashed
    errors = [p for p in audit if p["kind"] == "AgentError"]
    assert len(errors) == 1 and errors[0]["agent"] == "buggy" and errors[0]["action"] == "raise"
    assert errors[0]["traceback"] if how == "raise" else True
    assert any(p["kind"] == "Intent" for p in audit)


def test_cli_research_run_fails_with_one_line(tmp_path):
    out = tmp_path / "run"
    p = subprocess.run(
        [sys.executable, "-m", "hlquant.cli", "backtest", "strategy=broken", f"hydra.searchpath=[file://{CONF}]",
         "data.end=2026-01-06", "progress=false", f"hydra.run.dir={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**__import__("os").environ,
                                                                  "PYTHONPATH": str(ROOT)})
    assert p.returncode == 1, p.stdout[-2000:] + p.stderr[-2000:]
    err_lines = [x for x in p.stderr.splitlines() if x.startswith("error:")]
    assert err_lines and "agent buggy failed on BTC" in err_lines[0] and "ZeroDivisionError" in err_lines[0]
    assert "Traceback" not in p.stderr
    assert "AgentError" in set(read_audit(out / "audit")["kind"])


def test_live_modes_quarantine_the_agent_and_the_others_go_on(market):
    cfg = load_config(["strategy=broken", f"hydra.searchpath=[file://{CONF}]", "mode=paper",
                       "features.staleness.default=120000"])
    spec = KernelSpec.from_config(cfg, mode="paper")
    assert spec.on_error == "quarantine"  # the default of paper and live
    eng = replay_market(spec, market)
    audit = payloads(eng.audit.frame())
    errors = [p for p in audit if p["kind"] == "AgentError"]
    assert [(e["agent"], e["action"]) for e in errors] == [("buggy", "quarantine")]
    t_err = errors[0]["ts_exch"]
    retired = [p for p in audit if p["kind"] == "HeartbeatLoss" and p["agent"] == "buggy"]
    assert retired and retired[0]["ts_exch"] == t_err
    # its resting orders were cancelled, nothing of it stays open, it decides no more
    assert set(retired[0]["cancelled_orders"]) and not [o for o in eng.router.open.values() if o.req.agent == "buggy"]
    assert not [p for p in audit if p["kind"] == "Intent" and p["agent"] == "buggy" and p["ts_exch"] > t_err]
    assert [p for p in audit if p["kind"] == "Intent" and p["agent"] == "healthy" and p["ts_exch"] > t_err]
    assert eng.runner.counts["quarantined"] == 1


def test_a_strategy_failing_in_setup_is_handled_like_one_failing_in_decide(market, tmp_path):
    """setup() runs before the first event: a bug there is one line in research (no
    traceback for the user, the evidence in the audit) and a quarantine in paper/live."""
    agents = [Flipper(AgentConfig("healthy", ("ETH",))),
              BreaksOnBar(AgentConfig("buggy", ("BTC",), params={"how": "setup"}))]
    with pytest.raises(AgentFailure) as e:
        Backtest(market, agents, out_dir=tmp_path, staleness={"default": 120_000}).run()
    assert str(e.value) == "agent buggy failed in setup(): KeyError: 'lookback'"
    errors = [p for p in payloads(read_audit(tmp_path / "audit")) if p["kind"] == "AgentError"]
    assert [(x["agent"], x["symbol"], x["action"]) for x in errors] == [("buggy", "", "raise")]

    cfg = load_config(["strategy=broken", f"hydra.searchpath=[file://{CONF}]", "mode=paper",
                       "features.staleness.default=120000", "+strategy.agents.1.params.how=setup"])
    eng = replay_market(KernelSpec.from_config(cfg, mode="paper"), market)
    audit = payloads(eng.audit.frame())
    assert [(x["agent"], x["action"]) for x in audit if x["kind"] == "AgentError"] == [("buggy", "quarantine")]
    assert not [x for x in audit if x["kind"] == "Intent" and x["agent"] == "buggy"]
    assert [x for x in audit if x["kind"] == "Intent" and x["agent"] == "healthy"]
