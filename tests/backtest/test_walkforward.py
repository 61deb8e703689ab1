"""Walk-forward: folds (rolling or anchored), the configured sweep in sample, its best job out of
sample, the out-of-sample equity chained, in-sample against out-of-sample per fold."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from hlquant.backtest.walkforward import make_folds, split_search
from hlquant.core.errors import ConfigError

DAY = 86_400_000


def test_rolling_and_anchored_folds():
    f = make_folds(0, 7 * DAY, 3, "rolling", "2d", "1d")
    assert [(x.is_start, x.is_end, x.oos_start, x.oos_end) for x in f] == [
        (2 * DAY, 4 * DAY, 4 * DAY, 5 * DAY), (3 * DAY, 5 * DAY, 5 * DAY, 6 * DAY), (4 * DAY, 6 * DAY, 6 * DAY, 7 * DAY)]
    a = make_folds(0, 7 * DAY, 3, "anchored", "2d", "1d")
    assert [x.is_start for x in a] == [0, 0, 0] and [x.is_end for x in a] == [4 * DAY, 5 * DAY, 6 * DAY]
    even = make_folds(0, 7 * DAY, 5, "rolling", "2d")   # null out_of_sample: the rest split in folds
    assert all(x.oos_end - x.oos_start == DAY for x in even) and even[0].is_start == 0
    with pytest.raises(ConfigError, match="need 8.00d of data; the data spans 7.00d"):
        make_folds(0, 7 * DAY, 3, "rolling", "5d", "1d")
    with pytest.raises(ConfigError, match="walkforward.scheme"):
        make_folds(0, 7 * DAY, 3, "expanding", "2d", "1d")
    with pytest.raises(ConfigError, match="walkforward.in_sample='soon'"):
        make_folds(0, 7 * DAY, 3, "rolling", "soon", "1d")


def test_the_search_space_is_the_sweep_overrides():
    base, space = split_search(["strategy.fast=5,10", "risk.max_leverage=2", "strategy.slow=range(50,100,25)",
                                "hydra/sweeper=search", "walkforward.folds=2"])
    assert space == ["strategy.fast=5,10", "strategy.slow=range(50,100,25)"]
    assert base == ["risk.max_leverage=2", "hydra/sweeper=search", "walkforward.folds=2"]
    with pytest.raises(ConfigError, match="values, not config groups"):
        split_search(["strategy=ma_cross,momentum_meanrev"])


@pytest.mark.slow
def test_walkforward_end_to_end(tmp_path):
    out = tmp_path / "wf"
    p = subprocess.run([sys.executable, "-m", "hlquant.cli", "walkforward", "data.symbols=[BTC]",
                        "strategy.symbols=[BTC]", "walkforward.folds=2", "walkforward.in_sample=2d",
                        "walkforward.out_of_sample=1d", "strategy.fast=5,10", "strategy.slow=30,60",
                        f"hydra.run.dir={out}"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    table = pd.read_csv(out / "walkforward.csv")
    assert list(table["fold"]) == [0, 1]
    assert list(table["oos_start"]) == ["2026-01-10 00:00", "2026-01-11 00:00"]
    chained = pd.read_parquet(out / "oos_equity.parquet")["equity"]
    from hlquant.data.loaders import load_sample

    t0, t1 = load_sample().select(symbols=["BTC"]).span()
    folds = make_folds(t0, t1 + 1, 2, "rolling", "2d", "1d")
    level = 100_000.0
    for k, row in table.iterrows():
        summary = pd.read_csv(out / f"fold{k}" / "in_sample" / "summary.csv")
        assert len(summary) == 4
        best = summary.sort_values("sharpe", ascending=False).iloc[0]
        assert (row["strategy.fast"], row["strategy.slow"]) == (best["strategy.fast"], best["strategy.slow"])
        assert row["is_sharpe"] == pytest.approx(best["sharpe"])
        oos = json.loads((out / f"fold{k}" / "out_of_sample" / "run.json").read_text())
        assert oos["config"]["strategy"]["fast"] == best["strategy.fast"]
        assert (oos["config"]["data"]["start"], oos["config"]["data"]["end"]) == (folds[k].oos_start, folds[k].oos_end)
        assert row["oos_sharpe"] == pytest.approx(oos["metrics"]["sharpe"])
        fold_eq = pd.read_parquet(out / f"fold{k}" / "out_of_sample" / "equity.parquet")["equity"]
        part = chained.loc[fold_eq.index]
        np.testing.assert_allclose(part.to_numpy(), fold_eq.to_numpy() * level / 100_000.0, rtol=1e-12)
        level = float(part.iloc[-1])
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "ok" and info["kind"] == "walkforward"
    assert info["metrics"]["total_return"] == pytest.approx(chained.iloc[-1] / 100_000.0 - 1)
    assert (out / "walkforward.html").stat().st_size > 1_000_000   # self-contained page
    assert "out of sample, chained" in p.stdout
