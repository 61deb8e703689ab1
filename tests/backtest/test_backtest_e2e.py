"""End-to-end backtests on the bundled sample through the config path."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hlquant.audit.log import payloads
from hlquant.backtest.run import replay, run_backtest
from hlquant.config.compose import load_config
from hlquant.core.errors import ConfigError
from hlquant.data.loaders import load_sample, write_files
from hlquant.report.metrics import RunArtifacts, build_report


def compose(*overrides: str):
    return load_config(overrides)


def position_from_fills(res, symbol: str) -> float:
    f = res.artifacts.fills
    f = f[f["symbol"] == symbol]
    return float((f["side"] * f["sz"]).sum())


@pytest.fixture(scope="module")
def market2d():
    md = load_sample()
    start = int(md.span()[0])
    return md.select(start=start, end=start + 2 * 86_400_000)


def test_ma_cross_run_writes_consistent_report(tmp_path, market2d):
    cfg = compose("strategy=ma_cross", "progress=false")
    res = run_backtest(cfg, out_dir=tmp_path, market=market2d)
    m, art = res.metrics, res.artifacts
    assert res.stats["events"] == len(market2d)
    assert m["n_fills"] > 10
    # accounting identities: equity = cash + trading - fees + funding; fees = sum of fills
    assert m["final_equity"] == pytest.approx(art.initial_cash + m["net_pnl"])
    assert m["net_pnl"] == pytest.approx(m["trading_pnl"] - m["fees"] + m["funding"])
    assert m["fees"] == pytest.approx(art.fills["fee"].sum())
    # taker fee is the base tier on every fill's notional (market-style orders)
    notional = (art.fills["px"] * art.fills["sz"]).abs()
    assert (art.fills["fee"] <= notional * 0.00045 + 1e-9).all()
    assert res.stats["reconcile"] == {}, "portfolio must agree with the venue"
    for name in ("metrics.json", "equity.parquet", "fills.parquet", "report.png", "report.html",
                 "run.json", "trades.parquet", "prices.parquet"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert not (tmp_path / "plotly.min.js").exists(), "the page carries its charting library itself"
    html = (tmp_path / "report.html").read_text()
    assert "Monthly returns" in html and "PnL decomposition" in html
    back = RunArtifacts.load(tmp_path)
    assert build_report(back)["sharpe"] == pytest.approx(m["sharpe"])
    # max drawdown agrees with a direct computation
    eq = art.equity.to_numpy()
    assert m["max_drawdown"] == pytest.approx(np.min(eq / np.maximum.accumulate(eq) - 1))


def test_replay_reproduces_decisions_and_detects_changes(tmp_path, market2d):
    cfg = compose("strategy=ma_cross", "progress=false")
    run_backtest(cfg, out_dir=tmp_path, market=market2d)
    rep = replay(tmp_path, market=market2d)
    assert rep.identical, str(rep)
    assert rep.compared > 100
    # a different strategy parameter must not replay identically
    info = json.loads((tmp_path / "run.json").read_text())
    info["config"]["strategy"]["agents"][0]["params"]["fast"] = 7
    (tmp_path / "run.json").write_text(json.dumps(info))
    rep2 = replay(tmp_path, market=market2d)
    assert not rep2.identical and rep2.first_mismatch is not None
    # data that differs from what the run used is refused
    with pytest.raises(ConfigError, match="fingerprint"):
        replay(tmp_path, market=market2d.select(symbols=["BTC"]))


def test_two_agents_are_netted_into_one_position(market2d):
    cfg = compose("strategy=momentum_meanrev", "progress=false")
    res = run_backtest(cfg, market=market2d)
    audit = res.audit.frame()
    intents = [p for p in payloads(audit[audit["kind"] == "Intent"])]
    agents = {p["agent"] for p in intents}
    assert agents == {"momentum", "meanrev"}
    # replay the blackboard: the venue position follows the sum of the agents' latest targets
    latest: dict[str, float] = {}
    for p in intents:
        latest[p["agent"]] = p["target"]
    net = sum(latest.values())
    assert position_from_fills(res, "BTC") == pytest.approx(net, abs=1e-5)
    # the agents disagreed at times, and the engine sent one order for the difference
    decisions = payloads(audit[audit["kind"] == "RiskDecision"])
    assert any(d["approved"] and "netted 2 agent" in d.get("reason", "") for d in decisions)
    opposing = 0
    cur: dict[str, float] = {}
    for p in intents:
        cur[p["agent"]] = p["target"]
        if len(cur) == 2 and np.sign(cur["momentum"]) * np.sign(cur["meanrev"]) < 0:
            opposing += 1
    assert opposing > 0


def test_dead_agent_intents_and_orders_are_cancelled(market2d):
    start = int(market2d.span()[0])
    kill_at = start + 12 * 3_600_000
    cfg = compose("strategy=momentum_meanrev", "progress=false")
    cfg["faults"] = [{"agent": "momentum", "at": kill_at}]
    res = run_backtest(cfg, market=market2d)
    audit = res.audit.frame()
    losses = payloads(audit[audit["kind"] == "HeartbeatLoss"])
    assert [x["agent"] for x in losses] == ["momentum"]
    loss_ts = losses[0]["ts_exch"]
    # declared dead within ttl (180 s) + one heartbeat interval (60 s) of its last beat
    assert kill_at < loss_ts <= kill_at + 180_000 + 60_000
    intents = audit[audit["kind"] == "Intent"]
    assert not ((intents["agent"] == "momentum") & (intents["ts_exch"] > kill_at)).any()
    # afterwards the position follows meanrev alone
    last_mr = [p for p in payloads(intents) if p["agent"] == "meanrev"][-1]["target"]
    assert position_from_fills(res, "BTC") == pytest.approx(last_mr, abs=1e-5)


def test_funding_carry_earns_funding_reported_apart(market2d):
    cfg = compose("strategy=funding_carry", "progress=false")
    res = run_backtest(cfg, market=market2d)
    m, fund = res.metrics, res.artifacts.funding
    assert len(fund) > 0
    assert m["funding"] == pytest.approx(fund["amount"].sum())
    # a payment is -position * oracle * rate (longs pay positive rates)
    assert (np.sign(fund["amount"]) == -np.sign(fund["position"] * fund["rate"])).all()
    assert m["funding"] > 0, "a carry strategy positioned against funding should collect it"


def test_files_source_gives_the_same_backtest(tmp_path, market2d):
    write_files(market2d, tmp_path / "data")
    cfg = compose("strategy=ma_cross", "progress=false", "data=files", f"data.path={tmp_path / 'data'}")
    a = run_backtest(cfg)
    b = run_backtest(compose("strategy=ma_cross", "progress=false"), market=market2d)
    pd.testing.assert_series_equal(a.metrics, b.metrics)


def test_bad_config_is_a_clear_error(market2d):
    cfg = compose("strategy=ma_cross", "progress=false", "+risk.max_levrage=2")
    with pytest.raises(ConfigError, match="max_levrage"):
        run_backtest(cfg, market=market2d)


def test_risk_override_changes_limits(market2d):
    lo = run_backtest(compose("strategy=ma_cross", "progress=false", "risk.max_notional_per_symbol=5000"),
                      market=market2d)
    f = lo.artifacts.fills
    assert len(f) > 0
    for _sym, g in f.groupby("symbol"):
        pos_after = (g["side"] * g["sz"]).cumsum()
        # the limit holds at every fill price (orders are sized at their worst fill price)
        notional = (pos_after * g["px"]).abs()
        assert notional.max() <= 5000
        assert notional.max() > 5000 / 1.05 * 0.99, "the strategy asks for 10,000: the clip must bind"
