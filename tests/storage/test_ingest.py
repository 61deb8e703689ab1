"""`hlquant ingest`: files (bad rows reported), Hyperliquid REST (fake exchange), GraphQL indexer stub."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from aiohttp import web

from hlquant.core.errors import DataError
from hlquant.core.events import Candle, FundingRate, OrderRequest, Side, Tif
from hlquant.data.loaders import load_sample, write_files
from hlquant.fakeexchange.testing import free_port, running_fake_exchange
from hlquant.storage.ingest import ingest_files, ingest_graphql, ingest_hyperliquid

from .conftest import DSN


@pytest.fixture()
def data_dir(tmp_path):
    md = load_sample()
    t0 = int(md.span()[0])
    md = md.select(symbols=["BTC", "ETH"], start=t0, end=t0 + 6 * 3_600_000)
    d = tmp_path / "data"
    write_files(md, d, fmt="csv")
    return d, md


def corrupt_candles(d: Path) -> Path:
    f = next(d.glob("candles.*"))
    df = pd.read_parquet(f) if f.suffix == ".parquet" else pd.read_csv(f, dtype=str)
    df = df.astype(str)
    df.loc[4, "close"] = "not-a-number"
    df.loc[9, "high"] = "-5"
    out = d / "candles.csv"
    f.unlink()
    df.to_csv(out, index=False)
    return out


def test_files_ingest_is_idempotent_and_reports_bad_rows(pg_store, data_dir):
    d, md = data_dir
    res = ingest_files(pg_store, str(d), progress=False)
    assert res.inserted == len(md) and not res.bad_rows
    assert ingest_files(pg_store, str(d), progress=False).inserted == 0  # re-run: nothing new
    corrupt_candles(d)
    with pytest.raises(DataError, match=r"candles.csv row 5"):
        ingest_files(pg_store, str(d), progress=False)
    res = ingest_files(pg_store, str(d), on_error="skip", progress=False)
    assert [(f, row) for f, row, _ in res.bad_rows] == [("candles.csv", 5), ("candles.csv", 10)]
    assert "close" in res.bad_rows[0][2]
    assert "row 5" in res.summary()


def test_cli_ingest_files(pg_store, data_dir):
    d, md = data_dir
    p = subprocess.run([sys.executable, "-m", "hlquant.cli", "ingest", "--dsn", DSN, "--schema", pg_store.schema,
                        "files", str(d)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out == {"rows": len(md), "inserted": len(md), "bad_rows": 0}


def test_hyperliquid_rest_ingest_pages_and_dedupes(pg_store):
    with running_fake_exchange() as fx:
        fx.server.market.candle_page = 500
        fx.server.market.candle_history = 100_000
        t0 = (int(time.time() * 1000) // 60_000 - 3000) * 60_000
        for i in range(1200):
            t = t0 + i * 60_000
            for sym, px in (("BTC", 100_000.0), ("ETH", 3_000.0)):
                fx.server.publish(Candle(t + 60_000, t + 60_000, sym, "1m", px, px + 1, px - 1, px + i % 5, 2.0, 4, t))
        for h in range(20):
            ts = t0 + h * 3_600_000
            fx.server.publish(FundingRate(ts, ts, "BTC", 1e-5 * h, 0.0, 100_000.0))
        from hlquant.hyperliquid.exchange import ExchangeClient
        from hlquant.hyperliquid.info import InfoClient
        from hlquant.hyperliquid.signing import Signer
        from tests.hyperliquid.conftest import seed_books

        seed_books(fx.server)
        ex = ExchangeClient(Signer(fx.agent_key, fx.master), InfoClient(fx.url).assets(), fx.url)
        now = int(time.time() * 1000)
        ex.place([OrderRequest(now, now, "", "i", "a", "BTC", Side.BUY, 0.01, 100_100.0, Tif.IOC)] * 3)
        end = int(time.time() * 1000) + 60_000
        res = ingest_hyperliquid(pg_store, fx.url, ["BTC", "ETH"], t0, end, user=fx.master, progress=False)
        assert res.inserted == 2 * 1200 + 20 + 3
        assert fx.server.counters["info:candleSnapshot"] >= 2 * 3  # paged past the 500 cap
        again = ingest_hyperliquid(pg_store, fx.url, ["BTC", "ETH"], t0, end, user=fx.master, progress=False)
        assert again.inserted == 0
    md = pg_store.load_market()
    assert len(md.candles) == 2400 and len(md.funding) == 20
    assert pg_store.count("fills") == 3


class GraphQLStub:
    """A local indexer: account fills with Relay-style cursor pagination."""

    def __init__(self, fills: list[dict]):
        self.fills = fills
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests += 1
        v = body["variables"]
        assert "fills(account: $account, first: $first, after: $after)" in body["query"]
        rows = [f for f in self.fills if f["account"] == v["account"]]
        start = int(v["after"]) + 1 if v.get("after") else 0
        page = rows[start:start + v["first"]]
        edges = [{"cursor": str(start + i), "node": {k: x[k] for k in x if k != "account"}}
                 for i, x in enumerate(page)]
        has_next = start + len(page) < len(rows)
        return web.json_response({"data": {"fills": {"edges": edges, "pageInfo": {
            "hasNextPage": has_next, "endCursor": edges[-1]["cursor"] if edges else None}}}})


@pytest.fixture()
def graphql_stub():
    fills = [{"account": "0xabc", "tid": i, "time": 1_767_225_600_000 + i, "coin": "BTC", "side": "B" if i % 2 else "A",
              "px": "100000", "sz": "0.01", "fee": "0.45", "closedPnl": "0", "oid": i, "cloid": None}
             for i in range(1200)]
    fills[700]["px"] = None  # a malformed row from the indexer
    stub = GraphQLStub(fills)
    app = web.Application()
    app.router.add_post("/graphql", stub.handle)
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run():
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    started.wait(10)
    yield stub, f"http://127.0.0.1:{port}/graphql"
    loop.call_soon_threadsafe(loop.stop)


def test_graphql_indexer_cursor_pagination(pg_store, graphql_stub):
    stub, url = graphql_stub
    with pytest.raises(ValueError, match="page 1 edge 200"):
        ingest_graphql(pg_store, url, "0xabc", page_size=500)
    res = ingest_graphql(pg_store, url, "0xabc", page_size=500, on_error="skip")
    assert res.inserted == 1199 and len(res.bad_rows) == 1 and res.bad_rows[0][1] == 701
    assert ingest_graphql(pg_store, url, "0xabc", page_size=500, on_error="skip").inserted == 0
    assert pg_store.count("fills") == 1199
