"""The console and the session folder while a session runs and after it ends.

- a status line every ``live.status_every_s`` and ``status.json`` rewritten during the
  session (not only at the end);
- a normal WebSocket close (code 1000) is not logged as a warning, a dropped connection is;
- the end of a paper session writes the same report as a backtest from its fills,
  funding and equity;
- the market events the session received are recorded as it runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pandas as pd
import pytest

from hlquant.config.compose import load_config
from hlquant.fakeexchange.testing import running_fake_exchange
from hlquant.hyperliquid.ws import HyperliquidFeed, market_subscriptions
from hlquant.report import RunArtifacts
from tests.live.realtime import (
    RealtimeMarket,
    SessionThread,
    subscribed,
    trend_strategy,
    wait_until,
)


def paper_cfg(fx, *extra: str) -> dict:
    cfg = load_config(["mode=paper", f"live.url={fx.url}", "monitor.port=0", *extra])
    cfg["strategy"] = trend_strategy()
    return cfg


def test_status_line_and_status_json_while_the_session_runs(tmp_path, capsys):
    with running_fake_exchange() as fx:
        st = SessionThread(paper_cfg(fx, "live.status_every_s=0.5"), "paper", tmp_path).start()
        wait_until(lambda: subscribed(fx), 30, "market subscriptions")
        market = RealtimeMarket(fx).start()
        try:
            path = tmp_path / "status.json"
            first = wait_until(lambda: path.exists() and json.loads(path.read_text()), 10,
                               "status.json written while running")
            assert first["running"] is True and first["mode"] == "paper"
            later = wait_until(lambda: (s := json.loads(path.read_text()))["fills"] > 0
                               and s["time"] > first["time"] and s, 15, "status.json rewritten with fills")
            assert later["running"] is True and later["last_fill"]["symbol"] == "BTC"
            assert later["feed"]["connects"] == 1 and later["feed_lag_ms"]["p50"] is not None
            assert later["monitor"].startswith("http://127.0.0.1:")
        finally:
            market.close()
            res = st.stop()
    final = json.loads((tmp_path / "status.json").read_text())
    assert final["running"] is False and final["fills"] == len(res.engine.fills)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[paper ")]
    assert len(lines) >= 2, lines
    last = lines[-1]
    for part in ("equity ", "pnl trading ", " fees ", " funding ", "pos BTC ", "last fill BTC ", "feed lag p50 ",
                 "reconnects 0", "orders open "):
        assert part in last, (part, last)


async def _feed_until_closed(fx, drop: bool) -> dict:
    feed = HyperliquidFeed(fx.ws_url, market_subscriptions(["BTC"]), ping_s=30)
    stop = asyncio.Event()

    async def consume() -> None:
        async for _ in feed.events(stop):
            pass

    task = asyncio.create_task(consume())
    await asyncio.wait_for(feed.connected.wait(), 10)
    for _ in range(500):  # every subscription answered...
        if feed.counters["subscribed"] == len(feed.subscriptions):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # ...and nothing in flight: the feed waits in recv() when it is closed
    if drop:  # the server closes with 1012: a real disconnect
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(fx.server.drop_connections(), fx.loop))
        for _ in range(200):
            if feed.counters["reconnects"]:
                break
            await asyncio.sleep(0.02)
    stop.set()  # our own clean stop: close code 1000
    await asyncio.wait_for(task, 10)
    return dict(feed.counters)


def test_a_normal_close_is_not_a_warning(caplog):
    with running_fake_exchange() as fx:
        with caplog.at_level(logging.INFO, logger="hlquant.hyperliquid.ws"):
            asyncio.run(_feed_until_closed(fx, drop=False))
        closed = [r for r in caplog.records if "ws closed" in r.getMessage()]
        assert closed and all(r.levelno == logging.INFO for r in closed), [(r.levelname, r.getMessage()) for r in closed]
        assert "1000" in closed[0].getMessage()
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="hlquant.hyperliquid.ws"):
            counters = asyncio.run(_feed_until_closed(fx, drop=True))
        assert counters["reconnects"] >= 1
        dropped = [r for r in caplog.records if "ws closed" in r.getMessage() and "1012" in r.getMessage()]
        assert dropped and dropped[0].levelno == logging.WARNING


def test_session_ends_with_the_backtest_report_and_its_recorded_market(tmp_path):
    with running_fake_exchange() as fx:
        st = SessionThread(paper_cfg(fx, "live.status_every_s=0"), "paper", tmp_path).start()
        wait_until(lambda: subscribed(fx), 30, "market subscriptions")
        # a square wave: the trend follower buys every high and sells every low, so it loses
        # (see the report: a short *profitable* session hits an overflow in report metrics)
        market = RealtimeMarket(fx, wave="square", noise=0.0, period_s=0.8).start()
        wait_until(lambda: any((tmp_path / "market").glob("seg-*")), 15,
                   "market events recorded while the session runs")
        time.sleep(2.0)
        market.close()
        res = st.stop()
    eng = res.engine
    assert len(eng.fills) >= 4
    for name in ("metrics.json", "metrics.csv", "report.png", "report.html", "fills.parquet", "funding.parquet",
                 "equity.parquet", "latency.csv", "status.json"):
        assert (tmp_path / name).is_file(), name
    art = RunArtifacts.load(tmp_path)
    m = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert m["n_fills"] == len(eng.fills) == len(art.fills)
    assert m["fees"] == pytest.approx(sum(f.fee for f in eng.fills))
    assert m["final_equity"] == pytest.approx(eng.portfolio.equity())
    assert m["net_pnl"] == pytest.approx(eng.portfolio.equity() - eng.portfolio.initial_cash)
    assert art.equity.iloc[0] == pytest.approx(eng.portfolio.initial_cash)
    assert set(art.fills["cloid"]) == {f.cloid for f in eng.fills}
    # every market event the session applied is in market/, in the order it was applied
    from hlquant.live.recording import load_recording

    rec = load_recording(tmp_path)
    assert len(rec.market) == len(rec.arrivals) == eng.events
    assert rec.arrivals["audit_seq"].is_monotonic_increasing
    # the trades and books the fake exchange streams, and the marks of its asset contexts
    assert set(rec.arrivals["kind"]) == {"Trade", "BookSnapshot", "MarkPrice"}
    lat = pd.read_csv(tmp_path / "latency.csv")
    assert len(lat) >= len({f.cloid for f in eng.fills}) and (lat["decision_to_ack_ms"] >= 0).all()
