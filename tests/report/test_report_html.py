"""report.html is one self-contained file (no plotly.min.js beside it), small at any run length
(charts downsampled, full resolution in Parquet) and keeps what matters on the charts."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hlquant.report.files import write_report
from hlquant.report.html import downsample
from hlquant.report.metrics import FILL_COLUMNS, FUNDING_COLUMNS, RunArtifacts

MB = 1024 * 1024


def values(v) -> np.ndarray:
    """A trace's array as plotly.py writes it (a list, or typed-array base64 ``bdata``)."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v)


def figures(page: str) -> list[dict]:
    return [json.loads(m.replace("<\\/", "</")) for m in
            re.findall(r'<script type="application/json" id="hlq-fig-\d+">(.*?)</script>', page, flags=re.S)]


def test_report_is_one_self_contained_file(sample_run):
    _, out = sample_run
    page = (out / "report.html").read_text()
    assert not (out / "plotly.min.js").exists()
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", page), "nothing loaded from beside the page"
    assert 'id="hlq-plotly"' in page and "DecompressionStream" in page
    n_divs = len(re.findall(r'data-fig="hlq-fig-\d+"', page))
    assert n_divs == len(figures(page)) >= 7  # equity, exposure, 3 prices, daily, monthly
    assert (out / "report.html").stat().st_size < 5 * MB


def long_run(n: int = 1_000_000, seed: int = 5) -> RunArtifacts:
    """A synthetic million-bar run: equity, three symbols' prices and positions, 30,000 fills."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-01 00:01", periods=n, freq="1min", tz="UTC")
    eq = pd.Series(1e5 * np.cumprod(1 + rng.normal(0, 3e-4, n)), index=idx)
    eq.iloc[n // 3] = eq.max() * 1.5   # a spike and a crash the display must keep
    eq.iloc[2 * n // 3] = eq.min() * 0.5
    syms = ["BTC", "ETH", "SOL"]
    prices = pd.DataFrame({s: 100 * (i + 1) * np.exp(np.cumsum(rng.normal(0, 5e-4, n))) for i, s in enumerate(syms)},
                          index=idx)
    pos = pd.DataFrame({s: np.repeat(rng.choice([-1e4, 1e4], n // 1000), 1000) for s in syms}, index=idx)
    rows = []
    for s in syms:
        at = np.sort(rng.choice(n, 10_000, replace=False))
        for k, i in enumerate(at):
            px = float(prices[s].iloc[i])
            rows.append((idx[i], s, "a", 1 if k % 2 == 0 else -1, px, 0.1, px * 0.1 * 4.5e-4,
                         0.0 if k % 2 == 0 else rng.normal(0, 5), "taker", f"{s}{k}"))
    fills = pd.DataFrame(rows, columns=FILL_COLUMNS).sort_values("ts", kind="stable").reset_index(drop=True)
    return RunArtifacts(equity=eq, positions=pos, fills=fills, funding=pd.DataFrame(columns=FUNDING_COLUMNS),
                        initial_cash=1e5, name="long", prices=prices)


@pytest.mark.slow
def test_a_million_bar_report_stays_small_and_keeps_the_extremes(tmp_path):
    art = long_run()
    t0 = time.perf_counter()
    files = write_report(art, tmp_path)
    took = time.perf_counter() - t0
    size = files["report_html"].stat().st_size
    print(f"1,000,000 bars: report.html {size / MB:.2f} MB, written in {took:.1f} s")
    assert size < 5 * MB
    page = files["report_html"].read_text()
    strategy = next(tr for f in figures(page) for tr in f["data"] if tr.get("name") == "strategy")
    y = values(strategy["y"])
    assert len(y) <= 2_000
    assert y.max() == pytest.approx(art.equity.max())
    assert y.min() == pytest.approx(art.equity.min())
    back = pd.read_parquet(tmp_path / "equity.parquet")
    assert len(back) == 1_000_000, "full resolution stays in Parquet"
    (tmp_path.parent / "long_report_path.txt").write_text(str(files["report_html"]))


def test_downsample_keeps_first_last_and_extremes():
    rng = np.random.default_rng(1)
    y = np.cumsum(rng.normal(size=100_000))
    y[5000] = 1e6
    x = np.arange(len(y)) * 60_000
    i = downsample(x, y, 1000)
    assert len(i) <= 1000 and i[0] == 0 and i[-1] == len(y) - 1
    assert 5000 in i and int(np.argmin(y)) in i
    assert np.array_equal(downsample(x[:10], y[:10], 1000), np.arange(10))


def test_sweep_summary_page_is_self_contained(tmp_path):
    from hlquant.backtest.sweep_report import write_sweep_report

    df = pd.DataFrame({"job": [0, 1, 2, 3], "strategy.fast": [5, 5, 10, 10], "strategy.slow": [50, 100, 50, 100],
                       "sharpe": [1.0, -1.0, 2.0, 0.5], "node": "x", "output_dir": "/nowhere",
                       "started": "", "elapsed_s": 1.0})
    df.attrs["params"] = ["strategy.fast", "strategy.slow"]
    files = write_sweep_report(df, tmp_path)
    page = files["summary_html"].read_text()
    assert 'id="hlq-plotly"' in page and len(figures(page)) == 1
    assert not list(Path(tmp_path).glob("*.js"))
