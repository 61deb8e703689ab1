"""`hlquant parity RUN_DIR`: a recorded session beside its backtest on the same events.

Two sessions against the fake exchange, on a market published at wall-clock time
(``tests/live/realtime.py``): a paper session, which the backtest must reproduce
exactly (same decisions, same fills, no gap), and a live session whose exchange
executes every order 300 ms after it arrives (injected latency), where the backtest
as configured fills at once and the report must put the gap on latency.
"""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from hlquant.cli import main as cli_main
from hlquant.config.compose import load_config
from hlquant.core.errors import ConfigError, DataError
from hlquant.fakeexchange.testing import running_fake_exchange
from hlquant.promote.parity import parity_report
from hlquant.venues.sim import SimVenueConfig
from hlquant.venues.sim.latency import load_samples
from tests.live.realtime import (
    RealtimeMarket,
    SessionThread,
    subscribed,
    trend_strategy,
    wait_until,
)

INJECTED_MS = 300


def record_session(tmp_path, mode: str, seconds: float, monkeypatch=None, **fx_kw):
    with running_fake_exchange(**fx_kw) as fx:
        fx.server.faults.weight_per_min = 10**9
        over = [f"mode={mode}", f"live.url={fx.url}", "monitor.port=0", "live.status_every_s=0"]
        if mode == "live":
            monkeypatch.setenv("HLQUANT_PRIVATE_KEY", fx.agent_key)
            over += [f"live.account_address={fx.master}", "live.dead_mans_switch_ms=0"]
        cfg = load_config(over)
        cfg["strategy"] = trend_strategy()
        st = SessionThread(cfg, mode, tmp_path).start()
        wait_until(lambda: subscribed(fx), 30, "the session's market subscriptions")
        market = RealtimeMarket(fx).start()
        time.sleep(seconds)
        market.close()
        time.sleep(0.6)  # the last orders' fills reach the session
        res = st.stop()
    return res


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper")
    return out, record_session(out, "paper", 5.0)


def test_paper_session_and_its_backtest_agree(paper_run):
    out, res = paper_run
    assert len(res.engine.fills) >= 5, "the session must trade for the comparison to mean anything"
    rep = parity_report(out)
    s = rep.summary
    c = s["counts"]
    assert rep.agree, str(rep)
    assert c["decisions_same"] == len(rep.decisions) >= 5
    assert c["fills_matched"] == len(res.engine.fills) and c["fills_missed"] == c["fills_extra"] == 0
    fills = rep.fills
    assert (fills["dpx"] == 0).all() and (fills["dsz"] == 0).all() and (fills["dt_ms"] == 0).all()
    assert s["gap"] == pytest.approx(0.0, abs=1e-6)
    assert all(v == pytest.approx(0.0, abs=1e-6) for v in s["attribution"].values()), s["attribution"]
    # the session's own equity agrees with its fills valued at the backtest's final marks
    assert s["pnl"]["session"] == pytest.approx(s["pnl"]["backtest"], abs=1e-6)
    lat = s["latency"]
    assert lat["event_to_exchange_ms"]["n"] == len(rep.fills) and lat["event_to_exchange_ms"]["max"] == 0.0
    assert lat["decision_to_ack_ms"]["n"] >= len(res.engine.fills)
    on_disk = json.loads((out / "parity" / "parity.json").read_text())
    assert on_disk["agree"] is True and on_disk["counts"] == c
    page = (out / "parity" / "parity.html").read_text()
    assert "AGREE" in page and "Decisions, side by side" in page and (out / "parity" / "plotly.min.js").exists()


def test_parity_command_line(paper_run, tmp_path, capsys):
    out, _ = paper_run
    with pytest.raises(SystemExit) as e:
        cli_main(["parity", str(out), "--out", str(tmp_path / "rep")])
    assert e.value.code == 0
    printed = capsys.readouterr().out
    assert "AGREE" in printed and str(tmp_path / "rep" / "parity.html") in printed
    assert (tmp_path / "rep" / "latency_samples.csv").exists()


def test_parity_refuses_a_folder_that_is_not_a_session(tmp_path, paper_run):
    with pytest.raises(ConfigError, match="session.json"):
        parity_report(tmp_path)
    out, _ = paper_run
    (tmp_path / "session.json").write_text((out / "session.json").read_text())
    with pytest.raises(DataError, match="no recorded market events"):
        parity_report(tmp_path)


def test_injected_latency_is_attributed_to_latency(tmp_path, monkeypatch):
    res = record_session(tmp_path, "live", 6.0, monkeypatch,
                         venue_config=SimVenueConfig(latency_ms=INJECTED_MS))
    assert len(res.engine.fills) >= 5
    rep = parity_report(tmp_path)
    s = rep.summary
    a = s["attribution"]
    assert not rep.agree
    assert s["counts"]["decisions_same"] >= 5  # the same decisions (the agent reads only prices)...
    fm = rep.fills[rep.fills["status"] == "matched"]
    assert (fm["dt_ms"] >= INJECTED_MS).all(), fm["dt_ms"].tolist()  # ...filled later...
    assert (fm["dpx"] != 0).mean() > 0.5  # ...at other prices
    e2x = s["latency"]["event_to_exchange_ms"]
    assert INJECTED_MS <= e2x["p50"] < INJECTED_MS + 250, e2x
    # the gap is the latency's: same sign, the largest cause, most of the gap
    assert s["dominant"] == "latency", a
    assert a["latency"] * s["gap"] > 0 and abs(a["latency"]) >= 0.5 * abs(s["gap"]), (s["gap"], a)
    assert sum(a.values()) == pytest.approx(s["gap"], abs=1e-6)
    # the measured distribution is written out for a backtest
    samples = load_samples(s["latency"]["samples_file"])
    assert len(samples) == len(fm) and samples.min() >= INJECTED_MS
    lat = pd.read_csv(s["latency"]["samples_file"])
    assert set(lat.columns) >= {"cloid", "latency_ms"}
