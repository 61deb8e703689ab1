"""Strategy parameters are checked against the agent class's defaults when the config is built:
a wrong type is one error naming the key, not a crash deep inside a feature kernel."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hlquant.config.build import build_agents
from hlquant.config.compose import load_config
from hlquant.config.spec import KernelSpec
from hlquant.core.errors import ConfigError


def spec(*overrides: str) -> KernelSpec:
    return KernelSpec.from_config(load_config(list(overrides)))


@pytest.mark.parametrize("override, key, want", [
    ("strategy.fast=abc", "strategy.fast='abc'", "an int like the default 10 of MACross"),
    ("strategy.fast=5.5", "strategy.fast=5.5", "an int"),
    ("strategy.size_usd=lots", "strategy.size_usd='lots'", "a number like the default 10000.0"),
    ("strategy.fast=true", "strategy.fast=True", "an int"),
])
def test_a_parameter_of_the_wrong_type_names_its_key(override, key, want):
    with pytest.raises(ConfigError) as e:
        spec(override)
    assert str(e.value).startswith(key) and want in str(e.value)
    assert "strategy.agents[0].params" in str(e.value)


def test_parameters_of_a_compatible_type_are_converted():
    a = spec("strategy.fast=5.0", "strategy.size_usd=5000").agents[0]
    assert a.params["fast"] == 5 and isinstance(a.params["fast"], int)
    assert a.params["size_usd"] == 5000.0 and isinstance(a.params["size_usd"], float)
    carry = spec("strategy=funding_carry", "strategy.threshold=0").agents[0]
    assert carry.params["threshold"] == 0.0


def test_an_agent_key_set_directly_is_named_as_such():
    cfg = load_config([])
    cfg["strategy"]["agents"][0]["params"]["long_only"] = "yes"
    with pytest.raises(ConfigError, match=r"^strategy.agents\[0\].params.long_only='yes': expected a bool"):
        build_agents(cfg["strategy"])


def test_the_command_line_prints_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "hlquant.cli", "backtest", "strategy.slow=fifty",
                        f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines() == [
        "error: strategy.slow='fifty' (strategy.agents[0].params.slow): expected an int like the default 50 "
        "of MACross, got a string"]
