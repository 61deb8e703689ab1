"""`mode=paper` and `mode=live` sessions against the fake exchange replaying the sample."""

from __future__ import annotations

import asyncio
import json

import pytest

from hlquant.config.compose import load_config
from hlquant.connectors.replay import ReplayConnector
from hlquant.core.errors import ConfigError
from hlquant.data.loaders import load_sample
from hlquant.fakeexchange.testing import running_fake_exchange
from hlquant.hyperliquid.endpoints import resolve_endpoints
from hlquant.live.session import run_session

FAST = ["strategy=ma_cross", "strategy.fast=3", "strategy.slow=8", "strategy.symbols=[BTC,ETH]"]


def replay_sample(fx, hours: float = 12, speed: float = 2400.0):
    md = load_sample()
    t0 = int(md.span()[0])
    md = md.select(symbols=["BTC", "ETH"], start=t0, end=t0 + int(hours * 3_600_000))
    return fx.replay(iter(ReplayConnector(md)), speed=speed)


def test_paper_session_trades_on_live_data(tmp_path):
    with running_fake_exchange() as fx:
        cfg = load_config([*FAST, "mode=paper", f"live.url={fx.url}"])
        fut = replay_sample(fx)
        res = asyncio.run(run_session(cfg, "paper", out_dir=tmp_path, duration_s=8.0))
        fut.cancel()
    s = res.status
    assert s["events"] > 500
    assert s["feed"]["bad_messages"] == 0 and s["feed"]["connects"] == 1
    fills = res.engine.fills
    assert len(fills) > 2, s
    assert {f.symbol for f in fills} <= {"BTC", "ETH"}
    assert fx.server.orders_received == []  # paper: nothing reaches the exchange
    assert json.loads((tmp_path / "status.json").read_text())["mode"] == "paper"
    assert (tmp_path / "audit").is_dir()


def test_live_session_places_signed_orders_and_reconciles(tmp_path, monkeypatch):
    with running_fake_exchange() as fx:
        monkeypatch.setenv("HLQUANT_PRIVATE_KEY", fx.agent_key)
        cfg = load_config([*FAST, "mode=live", f"live.url={fx.url}", f"live.account_address={fx.master}",
                           "live.cancel_on_shutdown=true"])
        fut = replay_sample(fx)
        res = asyncio.run(run_session(cfg, "live", out_dir=tmp_path, duration_s=8.0))
        fut.cancel()
        exchange_positions = {c: float(p["position"]["szi"]) for c, p in (
            (p["position"]["coin"], p) for p in fx.server.clearinghouse_state(fx.master)["assetPositions"])}
    s = res.status
    assert fx.server.counters["exchange:scheduleCancel"] >= 2  # dead man's switch armed, then disarmed
    assert fx.server.orders_received, "orders must reach the exchange"
    cloids = [o["cloid"] for o in fx.server.orders_received]
    assert len(cloids) == len(set(cloids)), "no duplicate orders"
    assert len(res.engine.fills) > 0 and s["feed"]["connects"] == 1
    assert s["reconcile"] == {}, s["reconcile"]
    pf = {k: v for k, v in s["positions"].items()}
    assert pf == pytest.approx(exchange_positions)
    audit_text = "".join(p.read_bytes().hex() for p in (tmp_path / "audit").glob("*.parquet"))
    session_text = (tmp_path / "session.json").read_text() + (tmp_path / "status.json").read_text()
    key = fx.agent_key.removeprefix("0x")
    assert key not in session_text and key.encode().hex() not in audit_text


def test_mainnet_needs_explicit_confirmation():
    with pytest.raises(ConfigError, match="confirm_mainnet"):
        resolve_endpoints({"network": "mainnet"})
    assert resolve_endpoints({"network": "mainnet", "confirm_mainnet": True}).url == "https://api.hyperliquid.xyz"
    assert resolve_endpoints({}).url == "https://api.hyperliquid-testnet.xyz"
    assert resolve_endpoints({"url": "http://127.0.0.1:1"}).ws_url == "ws://127.0.0.1:1/ws"
