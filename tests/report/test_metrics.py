"""One definition per metric (docs/research.md), one annualization, checked against vectorbt's
returns accessor to 1e-9."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt  # noqa: F401  (registers the .vbt accessor)

from hlquant.report.metrics import FILL_COLUMNS, FUNDING_COLUMNS, RunArtifacts, build_report

DOCS = Path(__file__).resolve().parents[2] / "docs" / "research.md"


def artifacts(eq: pd.Series) -> RunArtifacts:
    return RunArtifacts(equity=eq, positions=pd.DataFrame(index=eq.index),
                        fills=pd.DataFrame(columns=FILL_COLUMNS), funding=pd.DataFrame(columns=FUNDING_COLUMNS),
                        initial_cash=float(eq.iloc[0]))


def synthetic(n=30_000, seed=3, drift=2e-6, start_with_loss=True):
    rng = np.random.default_rng(seed)
    r = rng.standard_t(4, n - 1) * 4e-4 + drift
    if start_with_loss:
        r[:50] = -abs(r[:50])  # the worst drawdown may start at the very first sample
    idx = pd.date_range("2026-01-01 00:01", periods=n, freq="1min", tz="UTC")
    return pd.Series(100_000.0 * np.concatenate([[1.0], np.cumprod(1 + r)]), index=idx)


def reference(eq: pd.Series) -> dict[str, float]:
    """vectorbt on the simple returns of the equity samples, annualized with the same P."""
    r = eq.pct_change().dropna()
    acc = r.vbt.returns(freq="1min", year_freq="365 days")
    # vectorbt's drawdown starts after the first return; a drawdown from the starting equity
    # needs that starting point as a zero return in front
    r0 = pd.concat([pd.Series([0.0], index=[eq.index[0]]), r])
    max_dd = r0.vbt.returns(freq="1min", year_freq="365 days").max_drawdown()
    return {"sharpe": acc.sharpe_ratio(), "sortino": acc.sortino_ratio(),
            "annual_volatility": acc.annualized_volatility(), "annual_return": acc.annualized(),
            "max_drawdown": max_dd, "calmar": acc.annualized() / abs(max_dd)}


@pytest.mark.parametrize("seed", [3, 4])
def test_metrics_equal_vectorbt_to_1e9(seed):
    eq = synthetic(seed=seed)
    m = build_report(artifacts(eq))
    for k, want in reference(eq).items():
        assert m[k] == pytest.approx(want, rel=1e-9, abs=1e-12), k


def test_a_backtests_metrics_equal_vectorbt_to_1e9(sample_run):
    res, _ = sample_run
    m = res.metrics
    for k, want in reference(res.artifacts.equity).items():
        assert m[k] == pytest.approx(want, rel=1e-9, abs=1e-12), k
    # calmar is the annual return over the drawdown: one annualization for both
    assert m["calmar"] == pytest.approx(m["annual_return"] / abs(m["max_drawdown"]), rel=1e-12)


def test_every_metric_has_one_documented_definition(sample_run):
    res, _ = sample_run
    text = DOCS.read_text()
    section = text[text.index("## Metrics"):]
    documented = re.findall(r"^\| `(\w+)` \|", section, flags=re.M)
    assert sorted(documented) == sorted(set(documented)), "a metric defined twice"
    assert set(res.metrics.index) <= set(documented), set(res.metrics.index) - set(documented)


def test_metrics_json_states_the_annualization(sample_run):
    _, out = sample_run
    meta = json.loads((out / "metrics.json").read_text())
    assert meta["basis"]["sample_step"] == "1min"
    assert meta["basis"]["periods_per_year"] == pytest.approx(525_600)
    assert "extrapolation" in meta["basis"]["annualized"]
    assert [w["code"] for w in meta["warnings"]] == ["short_run"]
    assert "sqrt(525,600)" in (out / "report.html").read_text()
