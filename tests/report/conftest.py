"""Shared fixtures of the report tests: a short backtest on the bundled sample."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory):
    """The default MA crossover on two days of the sample, with its files written."""
    from hlquant.backtest.run import run_backtest
    from hlquant.config.compose import load_config

    out = tmp_path_factory.mktemp("run")
    res = run_backtest(load_config(["progress=false", "data.end=2026-01-07"]), out_dir=out)
    return res, out
