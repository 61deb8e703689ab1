"""Recorder (live feed -> PostgreSQL, gaps backfilled) and the archive importer (LZ4 files)."""

from __future__ import annotations

import asyncio
import json

import lz4.frame

from hlquant.connectors.replay import ReplayConnector
from hlquant.data.loaders import load_sample
from hlquant.fakeexchange.testing import running_fake_exchange
from hlquant.hyperliquid.info import InfoClient
from hlquant.storage.recorder import Recorder, import_archive


def write_lz4(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    with lz4.frame.open(path, "wt") as f:
        for obj in lines:
            f.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")


def test_archive_import_l2_trades_fills(pg_store, tmp_path):
    root = tmp_path / "archive"
    books = [{"time": f"2026-01-05T10:00:0{i}.000", "ver_num": 1, "raw": {"channel": "l2Book", "data": {
        "coin": "BTC", "time": 1767607200000 + i * 1000,
        "levels": [[{"px": str(100000 - j), "sz": "1.5", "n": 2} for j in range(25)],
                   [{"px": str(100001 + j), "sz": "0.5", "n": 1} for j in range(25)]]}}} for i in range(5)]
    write_lz4(root / "market_data/20260105/10/l2Book/BTC.lz4", books)
    trades = [{"coin": "ETH", "side": "A", "time": "2026-01-05T10:00:01.5", "px": "3000.5", "sz": "0.2",
               "hash": f"0x{i:02x}", "tid": 100 + i} for i in range(4)]
    trades.append(trades[0])  # the same trade twice in the archive
    trades.append("{broken json")
    write_lz4(root / "node_trades/20260105/10.lz4", trades)
    fill = {"coin": "SOL", "px": "150.1", "sz": "3", "side": "B", "time": 1767607205000, "tid": 900,
            "crossed": True, "hash": "0xab"}
    write_lz4(root / "node_fills_by_block/20260105/10.lz4", [
        {"local_time": "x", "block_time": "y", "block_number": 1,
         "events": [["0xuser1", fill], ["0xuser2", {**fill, "side": "A", "crossed": False}]]}])
    rep = import_archive(pg_store, [root], progress=False)
    assert rep.files == 3 and len(rep.bad_lines) == 1 and rep.bad_lines[0][:2] == ("10.lz4", 6)
    md = pg_store.load_market()
    assert sorted(md.symbols) == ["BTC", "ETH", "SOL"]
    assert len(md.l2) == 5 and md.l2["bid_px"][0][0] == 100000 and md.l2["bid_px"].shape[1] == 10
    assert len(md.trades) == 5  # 4 ETH (duplicate dropped) + 1 SOL (one side of the fill)
    sol = md.trades[md.trades["sym"] == md.symbols.index("SOL")]
    assert sol["side"][0] == 1 and sol["tid"][0] == 900
    again = import_archive(pg_store, [root], progress=False)
    assert again.events == rep.events and pg_store.count("trades") == 5  # idempotent


def test_recorder_writes_the_feed_and_backfills_gaps(pg_store):
    md = load_sample()
    t0 = int(md.span()[0])
    md = md.select(symbols=["BTC", "ETH"], start=t0, end=t0 + 3 * 3_600_000)
    with running_fake_exchange() as fx:
        fx.server.market.candle_history = 100_000
        rec = Recorder(pg_store, fx.ws_url, InfoClient(fx.url), ["BTC", "ETH"], flush_every=500, flush_s=0.5)
        rec.feed.backoff_base_s = rec.feed.backoff_max_s = 0.3

        async def go():
            stop = asyncio.Event()
            task = asyncio.create_task(rec.run(stop))
            await asyncio.wait_for(rec.feed.connected.wait(), 10)
            await asyncio.sleep(0.3)
            replay = asyncio.wrap_future(fx.replay(iter(ReplayConnector(md)), speed=3600))
            await asyncio.sleep(1.0)
            fx.call(fx.server.drop_connections())  # a gap mid-stream
            await replay
            await asyncio.sleep(1.0)
            stop.set()
            return await task

        out = asyncio.run(go())
        published = {(c["s"], c["t"]) for (s, _iv), rows in fx.server.market.candles.items() for c in rows}
    assert out["gaps"] >= 1 and out["feed"]["reconnects"] >= 1
    assert pg_store.count("trades") > 100 and pg_store.count("l2") > 10
    stored = pg_store.load_market()
    # every closed candle the exchange published is stored: live ones plus the backfilled gap
    assert len(stored.candles) >= len(published) - 2 * 2  # the last open candle per coin is never closed
    assert out["backfilled_candles"] > 0
    assert out["gap_intervals"][0][1] >= out["gap_intervals"][0][0]
