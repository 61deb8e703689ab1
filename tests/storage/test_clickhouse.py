"""Audit analytics in ClickHouse (in-process chdb): materialized views agree with pandas."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest

from tests.conftest import IN_CI


def _chdb():
    try:
        import chdb  # noqa: F401
    except ImportError:
        if IN_CI:
            pytest.fail("chdb is required under CI=true (pip install '.[clickhouse]')")
        pytest.skip("chdb not installed")


@pytest.fixture(scope="module")
def run_audit():
    from hlquant.backtest.run import run_backtest
    from hlquant.config.compose import load_config
    from hlquant.data.loaders import load_sample

    md = load_sample()
    t0 = int(md.span()[0])
    md = md.select(start=t0, end=t0 + 86_400_000)
    res = run_backtest(load_config(["strategy=momentum_meanrev", "progress=false", "risk.clip=false",
                                    "risk.max_notional_per_symbol=15000"]), market=md)
    return res.audit.frame()


@pytest.fixture()
def ch(tmp_path_factory):
    _chdb()
    from hlquant.storage.clickhouse import AuditAnalytics

    path = tmp_path_factory.getbasetemp() / "chdb"
    return AuditAnalytics(path, database=f"t_{uuid.uuid4().hex[:8]}")


def test_views_match_the_audit_log(ch, run_audit):
    frame = run_audit
    assert ch.insert_audit(frame) == len(frame)
    assert ch.events() == len(frame)
    ch.insert_audit(frame)  # re-inserting a segment: ReplacingMergeTree keeps one copy
    ch.query(f"OPTIMIZE TABLE {ch.db}.audit_events FINAL")
    assert ch.events() == len(frame)

    fills = [json.loads(p) | {"agent": a} for p, a, k in zip(frame.payload, frame.agent, frame.kind, strict=True)
             if k == "Fill"]
    pnl = ch.pnl_per_agent_hour()
    # the views saw each insert once per insert: compare against twice the truth after the re-insert
    assert pnl["fills"].sum() == 2 * len(fills)
    assert pnl["fees"].sum() == pytest.approx(2 * sum(f["fee"] for f in fills))
    assert set(pnl["agent"]) == {f["agent"] for f in fills}

    lat = ch.order_latency()
    n_orders = int((frame.kind == "OrderRequest").sum())
    assert lat["orders"].sum() == n_orders
    assert (lat["ack_p50"] >= 0).all() and (lat["ack_max"] >= lat["ack_p99"]).all()

    rej = ch.rejections_by_reason()
    decisions = [json.loads(p) for p, k in zip(frame.payload, frame.kind, strict=True) if k == "RiskDecision"]
    over = sum(1 for d in decisions if not d["approved"] and d["reason"].startswith("limit max_notional"))
    assert over > 0
    got = rej[rej.reason == "risk: limit max_notional_per_symbol"]["n"].sum()
    assert got == 2 * over
    assert not rej["reason"].str.contains(r"\d").any(), "numbers are folded out of reasons"
    assert np.issubdtype(rej["n"].dtype, np.integer)
