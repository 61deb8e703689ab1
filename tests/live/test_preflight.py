"""The pre-flight check refuses unsafe promotions with a clear message."""

from __future__ import annotations

import pytest

from hlquant.config.compose import load_config
from hlquant.promote.preflight import PreflightError, check_credentials, check_risk, preflight

SHORT = ["data.end=2026-01-06", "progress=false"]


def test_good_strategy_passes_backtest_and_parity():
    cfg = load_config(["strategy=ma_cross", *SHORT])
    checks = preflight(cfg, live=False)
    assert [c.name for c in checks] == ["risk config", "backtest", "parity"]
    assert all(c.ok for c in checks), [str(c) for c in checks]
    assert "live engine == backtest" in checks[2].detail


@pytest.mark.parametrize("override, needle", [
    ("risk.max_leverage=100", "max_leverage"),
    ("risk.max_drawdown=1.0", "max_drawdown"),
    ("risk.max_orders_per_s=500", "max_orders_per_s"),
    ("risk.min_order_notional=1", "exchange minimum"),
    ("risk.kill_switch=true", "kill_switch"),
])
def test_risk_out_of_bounds_is_refused(override, needle):
    c = check_risk(load_config(["strategy=ma_cross", override]))
    assert not c.ok and needle in c.detail


def test_missing_risk_keys_are_refused():
    cfg = load_config(["strategy=ma_cross"])
    del cfg["risk"]["max_drawdown"]
    c = check_risk(cfg)
    assert not c.ok and "max_drawdown" in c.detail
    cfg.pop("risk")
    assert "no risk group" in check_risk(cfg).detail


def test_strategy_that_never_trades_is_refused():
    cfg = load_config(["strategy=ma_cross", "strategy.size_usd=1", *SHORT])
    with pytest.raises(PreflightError, match="sent no order"):
        preflight(cfg, live=False)


def test_credentials_rules(monkeypatch, tmp_path):
    cfg = {"live": {"network": "mainnet", "account_address": "0xabc"}}
    assert "confirm_mainnet" in check_credentials(cfg).detail
    cfg["live"]["confirm_mainnet"] = True
    monkeypatch.delenv("HLQUANT_PRIVATE_KEY", raising=False)
    assert "no signer key" in check_credentials(cfg).detail
    key = tmp_path / "key"
    key.write_text("0x" + "11" * 32)
    cfg["live"]["key_file"] = str(key)
    ok = check_credentials(cfg)
    assert ok.ok and "0x11" not in ok.detail
    monkeypatch.setenv("HLQUANT_PRIVATE_KEY", "0x" + "22" * 32)
    cfg["live"].pop("key_file")
    ok = check_credentials(cfg)
    assert ok.ok and "22222" not in str(ok)
