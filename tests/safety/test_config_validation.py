"""Contradictory or impossible limits (issue 11, item 9) are refused when the config is
built, each error naming the key and the allowed range; on the command line as one line,
before any data is read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hlquant.agents import Agent, AgentConfig
from hlquant.config.compose import load_config
from hlquant.config.spec import KernelSpec
from hlquant.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

CASES = [  # overrides, what the one-line error must say (key and allowed range)
    (["risk.max_order_notional=5"], "risk.max_order_notional must be >= risk.min_order_notional (10.0), got 5.0"),
    (["risk.min_order_notional=1", "risk.max_order_notional=5"],
     "risk.max_order_notional must be >= venue.min_order_value (10"),
    (["features.staleness.default=-1"], "features.staleness.default must be a whole number of ms >= 0, got -1"),
    (["+features.staleness.ema_fast=-5"], "features.staleness.ema_fast must be a whole number of ms >= 0"),
    (["router.max_batch=0"], "router.max_batch must be >= 1, got 0"),
    (["venue.initial_cash=0"], "venue.initial_cash must be a positive finite number (USDC) for a run, got 0.0"),
    (["venue.initial_cash=-1"], "venue.initial_cash must be a finite number >= 0 (USDC), got -1.0"),
    (["risk.max_orders_per_s=0"], "risk.max_orders_per_s must be a positive finite number, got 0.0"),
    (["risk.order_burst=0"], "risk.order_burst must be >= 1"),
    (["router.orders_per_s=0"], "router.orders_per_s must be a positive finite number, got 0.0"),
    (["router.burst=0"], "router.burst must be >= 1"),
    (["router.weight_per_min=0"], "router.weight_per_min must be a positive finite number"),
    (["venue.maintenance_margin_fraction=0"], "venue.maintenance_margin_fraction must be in (0, 1]"),
    (["venue.taker_fee=0.5"], "venue.taker_fee must be in (-0.01, 0.1)"),
    (["strategy.size_usd=-5"],
     "strategy.agents[0].params.size_usd (agent ma_cross) must be a finite number >= 0 (its default is 10000.0), "
     "got -5"),
    (["strategy.size_usd=nan"], "strategy.agents[0].params.size_usd (agent ma_cross) must be a finite number >= 0"),
    (["strategy=momentum_meanrev", "strategy.z=-1.5"], "strategy.agents[1].params.z (agent meanrev) must be a finite"),
    (["strategy=funding_carry", "strategy.span=-6"], "strategy.agents[0].params.span (agent carry) must be a finite"),
]


@pytest.mark.parametrize(("overrides", "message"), CASES)
def test_impossible_limits_are_refused_naming_key_and_range(overrides, message):
    with pytest.raises(ConfigError) as e:
        KernelSpec.from_config(load_config(overrides))
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_the_defaults_and_every_bundled_strategy_are_valid():
    for strategy in ("ma_cross", "momentum_meanrev", "funding_carry", "drill"):
        spec = KernelSpec.from_config(load_config([f"strategy={strategy}"]))
        assert spec.agents
    KernelSpec.from_config(load_config(["strategy.size_usd=0", "venue.maker_fee=-0.0001"]))  # 0: no trading


class Offset(Agent):
    defaults = {"size_usd": 100.0, "offset_bps": 5.0}
    signed_params = ("offset_bps",)


def test_python_api_checks_params_and_signed_params_opt_out():
    ok = Offset(AgentConfig("o", ("BTC",), params={"offset_bps": -5.0}))
    assert KernelSpec(agents=[ok]).agents == [ok]
    bad = Offset(AgentConfig("o", ("BTC",), params={"size_usd": -1.0}))
    with pytest.raises(ConfigError, match=r"strategy.agents\[0\].params.size_usd \(agent o\)"):
        KernelSpec(agents=[bad])
    inf = Offset(AgentConfig("o", ("BTC",), params={"size_usd": float("inf")}))
    with pytest.raises(ConfigError, match="finite"):
        KernelSpec(agents=[inf])


def hlquant(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("HLQUANT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "hlquant.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.mark.parametrize(("arg", "message"), [
    ("router.orders_per_s=0", "error: router: router.orders_per_s must be a positive finite number, got 0.0"),
    ("strategy.size_usd=-5", "error: strategy.agents[0].params.size_usd (agent ma_cross) must be a finite number"),
])
def test_the_command_refuses_in_one_line_before_reading_data(tmp_path, arg, message):
    # the data path does not exist: the config error must come first
    p = hlquant("backtest", arg, "data=files", f"data.path={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path / 'r'}",
                cwd=tmp_path)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), p.stderr[-2000:]
    assert "Traceback" not in p.stderr
