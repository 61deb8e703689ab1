"""Hyperliquid's asset contexts as signals: WS frames, REST polling (fake exchange), archive history."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pandas as pd
import pytest

from hlquant.core.errors import ConfigError, DataError
from hlquant.core.events import MarkPrice, Signal
from hlquant.data.signals import ASSET_CTX_FIELDS, save_asset_ctxs
from hlquant.hyperliquid.context import HyperliquidContextConnector
from hlquant.hyperliquid.ws import HyperliquidFeed

CTX = {"funding": "0.0000125", "openInterest": "1234.5", "oraclePx": "90000.0", "markPx": "90010.0",
       "midPx": None, "premium": "0.0003", "prevDayPx": "88000.0", "dayNtlVlm": "5500000.0",
       "impactPxs": ["90005.0", "90015.0"]}


def test_active_asset_ctx_frame_becomes_signals_named_by_field():
    c = HyperliquidContextConnector(["BTC"], clock_ms=lambda: 5_000)
    evs = c.normalize({"coin": "BTC", "ctx": CTX})
    assert {(e.name, e.value) for e in evs} == {("hl.open_interest", 1234.5), ("hl.funding", 1.25e-5),
                                                ("hl.premium", 3e-4), ("hl.day_ntl_vlm", 5.5e6)}
    assert all(e.symbol == "BTC" and e.ts_exch == e.ts_recv == 5_000 for e in evs)
    assert c.normalize({"coin": "DOGE", "ctx": CTX}) == []  # not traded here
    mid = HyperliquidContextConnector(["BTC"], fields=["mid_px", "oracle_px"], prefix="ctx.")
    assert [(e.name, e.value) for e in mid.normalize({"coin": "BTC", "ctx": CTX}, recv=1)] == [("ctx.oracle_px", 9e4)]
    with pytest.raises(ValueError, match="not an asset context"):
        c.normalize({"channel": "trades"})
    with pytest.raises(ConfigError, match="unknown field"):
        HyperliquidContextConnector(["BTC"], fields=["vibes"])


def test_meta_and_asset_ctxs_reply_lines_up_universe_and_contexts():
    c = HyperliquidContextConnector(["ETH", "SOL"], fields=["open_interest"])
    reply = [{"universe": [{"name": "BTC"}, {"name": "ETH"}, {"name": "SOL"}]},
             [CTX, {**CTX, "openInterest": "10"}, {**CTX, "openInterest": "20"}]]
    assert [(e.symbol, e.value) for e in c.normalize(reply, recv=7)] == [("ETH", 10.0), ("SOL", 20.0)]
    with pytest.raises(ValueError, match="do not line up"):
        c.normalize([{"universe": [{"name": "BTC"}]}, []], recv=7)


def test_the_market_feed_carries_context_signals_when_asked():
    feed = HyperliquidFeed("ws://127.0.0.1:1/ws", [], clock_ms=lambda: 9_000)
    frame = json.dumps({"channel": "activeAssetCtx", "data": {"coin": "BTC", "ctx": CTX}})
    assert [type(e) for e in feed.normalize(frame)] == [MarkPrice]  # by default: the mark only
    feed.ctx_signals = HyperliquidContextConnector(["BTC"], fields=["open_interest"])
    evs = feed.normalize(frame)
    assert [type(e) for e in evs] == [MarkPrice, Signal] and evs[1].value == 1234.5 and evs[1].ts_recv == 9_000


def test_rest_polling_against_the_fake_exchange():
    from hlquant.fakeexchange.testing import running_fake_exchange
    from hlquant.hyperliquid.info import InfoClient

    with running_fake_exchange() as fx:
        c = HyperliquidContextConnector(["BTC", "ETH"], source="rest", interval_s=0.05, info=InfoClient(fx.url))

        async def main() -> list[Signal]:
            stop = asyncio.Event()
            got: list[Signal] = []
            async for ev in c.events(stop):
                got.append(ev)
                if c.counters["polls"] >= 2:
                    stop.set()
            return got

        got = asyncio.run(asyncio.wait_for(main(), 30))
    assert {(e.symbol, e.name) for e in got} >= {("BTC", "hl.funding"), ("ETH", "hl.open_interest")}
    assert c.counters["polls"] >= 2 and c.counters["poll_errors"] == 0


def test_history_comes_from_the_archive_file(tmp_path):
    rows = []
    for i in range(3):
        for sym in ("BTC", "ETH"):
            r = {"ts_exch": 1_767_571_260_000 + i * 60_000, "ts_src": 1_767_571_259_000 + i * 60_000,
                 "symbol": sym}
            r.update({f: float(i + 1) for f in ASSET_CTX_FIELDS})
            rows.append(r)
    f = pd.DataFrame(rows)
    f.loc[0, "open_interest"] = np.nan  # an empty archive field: no observation
    save_asset_ctxs(f, tmp_path)
    c = HyperliquidContextConnector(["BTC"], fields=["open_interest", "premium"], path=tmp_path)
    s = c.history(market=None)
    df = s.to_frame()
    assert set(df["symbol"]) == {"BTC"} and s.names() == {"hl.open_interest", "hl.premium"}
    assert len(df[df["name"] == "hl.open_interest"]) == 2 and len(df[df["name"] == "hl.premium"]) == 3
    assert (df["ts_recv"] == df["ts_exch"]).all()  # visible at the minute stamp, never before
    with pytest.raises(DataError, match="asset_ctxs.parquet"):
        HyperliquidContextConnector(["BTC"], path=tmp_path / "none").history(None)
    with pytest.raises(ConfigError, match="path"):
        HyperliquidContextConnector(["BTC"]).history(None)
