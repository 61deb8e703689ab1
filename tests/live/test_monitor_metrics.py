"""``/metrics`` (Prometheus), ``/api/state`` and ``/events`` of a running paper session.

The scrape is parsed with prometheus_client's own parser, and its figures are checked
against the session's state (fills, PnL split, risk decisions, agents, latency and lag
histograms).
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hlquant.config.compose import load_config
from hlquant.core.errors import ConfigError
from hlquant.fakeexchange.testing import running_fake_exchange
from hlquant.live.monitor import MonitorConfig, monitor_config
from tests.live.realtime import (
    RealtimeMarket,
    SessionThread,
    subscribed,
    trend_strategy,
    wait_until,
)


def get(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.headers.get("Content-Type", ""), r.read().decode()


def scrape(url: str) -> dict[str, dict]:
    ctype, text = get(url + "metrics")
    assert ctype.startswith("text/plain") and "version=" in ctype
    out: dict[str, dict] = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = {"type": fam.type, "samples": [(s.name, dict(s.labels), s.value) for s in fam.samples]}
    return out


def value(fams: dict, family: str, sample: str | None = None, **labels: str) -> float:
    for name, lab, v in fams[family]["samples"]:
        if (sample is None or name == sample) and all(lab.get(k) == x for k, x in labels.items()):
            return v
    raise KeyError((family, sample, labels))


def test_metrics_scrape_parses_and_matches_the_session(tmp_path):
    with running_fake_exchange() as fx:
        cfg = load_config(["mode=paper", f"live.url={fx.url}", "monitor.port=0", "live.status_every_s=0"])
        cfg["strategy"] = trend_strategy()
        st = SessionThread(cfg, "paper", tmp_path).start()
        market = None
        try:
            wait_until(lambda: subscribed(fx), 30, "market subscriptions")
            url = wait_until(lambda: _monitor_url(tmp_path), 10, "the monitor's URL in status.json")
            market = RealtimeMarket(fx).start()
            wait_until(lambda: json.loads(get(url + "api/state")[1])["fills_total"] >= 3, 15, "three fills")
            market.close()
            time.sleep(0.3)
            fams = scrape(url)
            _, body = get(url + "api/state")
            state = json.loads(body)
            events = _first_sse_event(url)
        finally:
            if market is not None:
                market.close()
            res = st.stop()
    # gauges and counters of the same figures as the page
    assert fams["hlquant_equity_usd"]["type"] == "gauge"
    assert value(fams, "hlquant_equity_usd") == pytest.approx(state["equity"], rel=1e-3)
    assert {lab["component"] for _, lab, _ in fams["hlquant_pnl_usd"]["samples"]} == {"trading", "fees", "funding", "net"}
    assert value(fams, "hlquant_pnl_usd", component="fees") == pytest.approx(state["pnl"]["fees"])
    assert fams["hlquant_fills"]["type"] == "counter"
    assert value(fams, "hlquant_fills", "hlquant_fills_total") == state["fills_total"] >= 3
    assert value(fams, "hlquant_risk_decisions", "hlquant_risk_decisions_total", code="APPROVED") >= 3
    assert value(fams, "hlquant_agent_alive", agent="trend") == 1.0
    assert value(fams, "hlquant_kill_switch") == 0.0
    limits = {lab["limit"] for _, lab, _ in fams["hlquant_risk_limit"]["samples"]}
    assert limits == {"max_notional_per_symbol", "max_gross_exposure", "max_leverage", "max_drawdown", "order_burst"}
    assert value(fams, "hlquant_router_budget", budget="orders_tokens") <= 100
    # histograms: decision-to-ack latency and feed lag
    assert fams["hlquant_decision_to_ack_seconds"]["type"] == "histogram"
    n_ack = value(fams, "hlquant_decision_to_ack_seconds", "hlquant_decision_to_ack_seconds_count")
    assert n_ack >= state["fills_total"]
    assert value(fams, "hlquant_decision_to_ack_seconds", "hlquant_decision_to_ack_seconds_bucket", le="+Inf") == n_ack
    assert value(fams, "hlquant_feed_lag_seconds", "hlquant_feed_lag_seconds_count") >= 10
    assert value(fams, "hlquant_market_events", "hlquant_market_events_total", kind="Trade") >= 10
    # the page's JSON and its event stream
    assert state["topology"] == "single" and state["mode"] == "paper" and state["strategy"] == "trend"
    assert state["router"]["ack_latency_ms"]["p50"] is not None and state["feed"]["lag_ms"]["p99"] is not None
    assert state["agents"][0]["name"] == "trend" and state["agents"][0]["alive"] is True
    assert events["session"] == state["session"] == res.engine.kernel.session


def _monitor_url(tmp_path) -> str | None:
    """The URL the session serves (``monitor.port=0`` picks one), from its status.json."""
    p = tmp_path / "status.json"
    return json.loads(p.read_text()).get("monitor") if p.exists() else None


def _first_sse_event(url: str) -> dict:
    with urllib.request.urlopen(url + "events", timeout=10) as r:
        assert r.headers.get("Content-Type") == "text/event-stream"
        for raw in r:
            line = raw.decode().strip()
            if line.startswith("data: "):
                return json.loads(line[6:])
    raise AssertionError("no event on the stream")


def test_monitor_config_is_loopback_only_and_typed():
    with pytest.raises(ValueError, match="loopback"):
        MonitorConfig(host="0.0.0.0")
    assert MonitorConfig(host="::1").host == "::1"
    with pytest.raises(ConfigError, match=r"monitor: unknown key\(s\) \['prot'\]"):
        monitor_config({"monitor": {"prot": 1}})
    with pytest.raises(ConfigError, match="monitor.port"):
        monitor_config({"monitor": {"port": 70000}})
    assert monitor_config(load_config([])).port == MonitorConfig().port
