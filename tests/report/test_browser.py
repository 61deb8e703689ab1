"""Every chart of report.html and summary.html renders in headless Chromium (Debian's package,
installed by scripts/browser.sh) for a page copied alone to another folder, without network."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import require_server

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    require_server(CHROMIUM.exists() and sync_playwright is not None,
                   "chromium (bash scripts/browser.sh) and playwright (pip install '.[dev]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield b
        b.close()


def render(browser, page_path: Path, timeout_ms: int = 60_000) -> dict:
    """Open a page from disk; wait for its charts; what rendered and what went wrong."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    remote: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("**/*", lambda route: (remote.append(route.request.url), route.abort())
               if not route.request.url.startswith(("file:", "data:", "blob:")) else route.continue_())
    t0 = time.perf_counter()
    page.goto(page_path.as_uri())
    page.wait_for_function("document.body && document.body.dataset.charts", timeout=timeout_ms)
    out = {
        "state": page.evaluate("document.body.dataset.charts"),
        "seconds": time.perf_counter() - t0,
        "charts": page.evaluate("document.querySelectorAll('div[data-fig]').length"),
        "drawn": page.evaluate("[...document.querySelectorAll('div[data-fig]')]"
                               ".filter(d => d.querySelector('.main-svg') && d.querySelector('.plot-container'))"
                               ".length"),
        "errors": errors, "remote": remote,
    }
    page.close()
    return out


def test_report_copied_alone_renders_every_chart(browser, sample_run, tmp_path):
    _, out = sample_run
    alone = tmp_path / "elsewhere" / "report.html"
    alone.parent.mkdir()
    shutil.copy(out / "report.html", alone)
    r = render(browser, alone)
    assert r["state"] == "ready", r
    assert r["charts"] >= 7 and r["drawn"] == r["charts"], r
    assert not r["errors"] and not r["remote"], r


def test_sweep_summary_copied_alone_renders_its_chart(browser, tmp_path):
    from hlquant.backtest.sweep_report import write_sweep_report

    df = pd.DataFrame({"job": [0, 1, 2, 3], "strategy.fast": [5, 5, 10, 10], "strategy.slow": [50, 100, 50, 100],
                       "sharpe": [1.0, -1.0, 2.0, 0.5], "node": "x", "output_dir": "/nowhere", "started": "",
                       "elapsed_s": 1.0})
    df.attrs["params"] = ["strategy.fast", "strategy.slow"]
    (tmp_path / "sweep").mkdir()
    files = write_sweep_report(df, tmp_path / "sweep")
    alone = tmp_path / "elsewhere" / "summary.html"
    alone.parent.mkdir()
    shutil.copy(files["summary_html"], alone)
    r = render(browser, alone)
    assert r["state"] == "ready" and r["charts"] == 1 and r["drawn"] == 1, r
    assert not r["errors"] and not r["remote"], r


@pytest.mark.slow
def test_a_million_bar_report_opens_quickly(browser, tmp_path):
    from hlquant.report.files import write_report
    from tests.report.test_report_html import long_run

    files = write_report(long_run(), tmp_path / "long")
    alone = tmp_path / "elsewhere" / "report.html"
    alone.parent.mkdir()
    shutil.copy(files["report_html"], alone)
    r = render(browser, alone)
    print(f"1,000,000-bar report: {r['charts']} charts drawn in {r['seconds']:.1f} s")
    assert r["state"] == "ready" and r["drawn"] == r["charts"], r
    assert r["seconds"] < 20, r
