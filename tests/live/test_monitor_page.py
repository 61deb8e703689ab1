"""The monitoring page in a real browser: Debian's chromium, headless, driven by Playwright.

A paper session against the fake exchange serves the page; the browser opens it before
anything traded, and a fill must appear on it by itself (server-sent events, no reload)
within a few seconds of the venue reporting it. ``scripts/browser.sh`` installs chromium;
no browser is ever downloaded.
"""

from __future__ import annotations

import shutil
import time

import pytest

from hlquant.config.compose import load_config
from hlquant.fakeexchange.testing import free_port, running_fake_exchange
from tests.conftest import require_server
from tests.live.realtime import (
    RealtimeMarket,
    SessionThread,
    subscribed,
    trend_strategy,
    wait_until,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
FILL_VISIBLE_WITHIN_MS = 3_000


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_server(False, "playwright (pip install '.[dev]')")
    require_server(shutil.which("chromium") is not None, "chromium (bash scripts/browser.sh)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_a_fill_appears_on_the_page_within_seconds(tmp_path, browser):
    port = free_port()
    with running_fake_exchange() as fx:
        cfg = load_config(["mode=paper", f"live.url={fx.url}", f"monitor.port={port}", "live.status_every_s=0"])
        cfg["strategy"] = trend_strategy()
        st = SessionThread(cfg, "paper", tmp_path).start()
        market = None
        try:
            wait_until(lambda: subscribed(fx), 30, "market subscriptions")
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#conn.ok", timeout=10_000)  # the event stream is open
            assert page.inner_text("#title").startswith("trend")
            assert page.locator("#fills tbody tr").count() == 0  # nothing traded yet
            market = RealtimeMarket(fx).start()
            row = page.wait_for_selector("#fills tbody tr", timeout=15_000)
            seen_ms = time.time() * 1000
            fill_ms = int(row.get_attribute("data-ts"))  # when the venue reported the fill
            delay = seen_ms - fill_ms
            print(f"fill visible on the page {delay:.0f} ms after the venue reported it")
            assert 0 <= delay <= FILL_VISIBLE_WITHIN_MS, f"fill shown {delay:.0f} ms after the venue reported it"
            cloid = row.get_attribute("data-cloid")
            assert cloid.startswith("0x")
            # the rest of the page follows: position, PnL split, agent alive, feed lag, router latency
            wait_until(lambda: page.locator("#positions td").count() > 0, 5, "the position row")
            kpis = page.inner_text("#kpis")
            for label in ("equity", "net PnL", "trading", "fees paid", "funding", "fills"):
                assert label in kpis
            assert "alive" in page.inner_text("#agents")
            assert "lag p50" in page.inner_text("#feed") and "decision→ack" in page.inner_text("#router")
            assert "Fill" in page.inner_text("#audit")
            assert page.locator("#curve path").count() == 1
        finally:
            if market is not None:
                market.close()
            res = st.stop()
    assert cloid in {f.cloid for f in res.engine.fills}
