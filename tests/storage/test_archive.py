"""Hyperliquid archive files read as they really are (fixtures: tests/data/archive, see make_fixtures.py)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import lz4.frame
import numpy as np
import pandas as pd
import pytest

from hlquant.data.candles import CandleBuilder, trade_candles
from hlquant.data.loaders import load_sample
from hlquant.data.market import MarketData
from hlquant.data.signals import ASSET_CTX_FIELDS, load_asset_ctxs
from hlquant.storage.archive import (
    DERIVED_TID_BIT,
    TRADES_FILE,
    parse_time_ns,
    parse_times_ns,
    read_archive,
)
from hlquant.storage.recorder import main as record_main

FIX = Path(__file__).resolve().parent.parent / "data" / "archive"
CTX = FIX / "hyperliquid-archive" / "asset_ctxs" / "20250322.csv.lz4"
CTX_SPACE = FIX / "hyperliquid-archive" / "asset_ctxs" / "20251024.csv.lz4"
TRADES = FIX / "hl-mainnet-node-data" / "node_trades" / "hourly" / "20250322"
FILLS = FIX / "hl-mainnet-node-data" / "node_fills" / "hourly" / "20250525" / "14.lz4"
BLOCKS = FIX / "hl-mainnet-node-data" / "node_fills_by_block" / "hourly" / "20250727"
L2 = FIX / "hyperliquid-archive" / "market_data"


def lines(path: Path) -> list[str]:
    return lz4.frame.open(path, "rt").read().splitlines()


def ms(iso: str) -> int:
    return int(pd.Timestamp(iso).value // 1_000_000)


# ----------------------------------------------------------------------------- times
def test_archive_times_parse_exactly_in_every_shape():
    assert parse_time_ns("2025-03-22T10:48:33.216798262") == 1742640513216798262
    assert parse_time_ns("2025-03-22T10:00:00Z") == 1742637600000000000
    assert parse_time_ns("2025-10-24 20:00:00.000") == 1761336000000000000
    assert parse_time_ns("2024-07-26T08:26:25.899") == 1721982385899000000
    assert parse_time_ns("2025-03-22T12:00:00+02:00") == 1742637600000000000
    assert parse_time_ns(1748181656665) == 1748181656665000000
    assert parse_time_ns("1748181656665") == 1748181656665000000
    # a float round trip would lose the last digits: 2**53 ns is ~104 days
    assert parse_time_ns("2025-03-22T10:59:59.999999999") % 1_000_000_000 == 999_999_999
    texts = pd.Series(["2025-03-22T10:00:00Z", "2025-10-24 20:00:00.000", "2025-03-22T10:48:33.216798262",
                       "1748181656665", "2025-03-22T12:00:00+02:00", "yesterday"])
    ns, ok = parse_times_ns(texts)
    assert ok.tolist() == [True] * 5 + [False]
    assert ns[:5].tolist() == [parse_time_ns(t) for t in texts[:5]]
    with pytest.raises(ValueError, match="yesterday"):
        parse_time_ns("yesterday")


# ----------------------------------------------------------------------------- asset_ctxs
def raw_ctx_rows(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO("\n".join(lines(path)))))


def test_asset_ctxs_become_mark_funding_and_signals_with_every_oddity_counted():
    data, rep = read_archive([CTX, CTX_SPACE])
    rows = raw_ctx_rows(CTX) + raw_ctx_rows(CTX_SPACE)
    assert rep.ctx_rows == len(rows) == rep.lines
    # counted from the raw text, independently of the importer
    for f in ASSET_CTX_FIELDS:
        assert rep.ctx_empty.get(f, 0) == sum(r[f] == "" for r in rows), f
        assert rep.ctx_null.get(f, 0) == sum(r[f] == "null" for r in rows), f
    assert rep.ctx_zero_price["mark_px"] == sum(r["mark_px"] == "0.0" for r in rows) == 240
    keys = [(r["coin"], parse_time_ns(r["time"])) for r in rows]
    assert rep.ctx_duplicates == len(keys) - len(set(keys)) == 1
    off = [k for k in set(keys) if k[1] % 60_000_000_000]
    assert rep.ctx_off_grid == len(off) == 3
    # flooring would put each on a minute that has a row; stamped at the next minute instead:
    # two collide with that minute's own row (dropped), one (ETH 12:15:00.250) fills 12:16
    assert rep.ctx_collisions == 2 and rep.ctx_off_grid_kept == 1
    ctx = data.asset_ctxs
    assert not ctx.duplicated(["symbol", "ts_exch"]).any()
    assert (ctx["ts_exch"] % 60_000 == 0).all() and (ctx["ts_exch"] >= ctx["ts_src"]).all()
    eth = ctx[(ctx["symbol"] == "ETH") & (ctx["ts_exch"] == ms("2025-03-22T12:16:00Z"))]
    assert eth["ts_src"].tolist() == [ms("2025-03-22T12:15:00.250Z")]
    btc = ctx[(ctx["symbol"] == "BTC") & (ctx["ts_exch"] == ms("2025-03-22T11:30:00Z"))]
    assert btc["ts_src"].tolist() == [ms("2025-03-22T11:30:00Z")]  # the on-grid row wins
    hpos = ctx[ctx["symbol"] == "HPOS"]
    assert hpos[["mark_px", "mid_px", "oracle_px", "premium"]].isna().all().all()
    assert (hpos["funding"] == 0.0000125).all() and (hpos["open_interest"] == 0.0).all()
    # MARK: one per minute with a mark price; FUNDING: the last minute of each hour, at the hour
    md = data.market
    assert len(md.mark) == int(ctx["mark_px"].notna().sum()) and rep.mark_missing == 240
    by_key = {(r["coin"], parse_time_ns(r["time"]) // 1_000_000): r for r in rows}
    for row in md.funding:
        sym = md.symbols[row["sym"]]
        src = by_key[(sym, int(row["ts_exch"]) - 60_000)]  # the row of minute H-1
        assert row["ts_exch"] % 3_600_000 == 0
        assert row["rate"] == float(src["funding"])
        oracle = float(src["oracle_px"])
        assert row["oracle_px"] == oracle if oracle else np.isnan(row["oracle_px"])
    btc_f = md.funding[md.funding["sym"] == md.symbols.index("BTC")]
    assert [pd.Timestamp(t, unit="ms", tz="UTC").strftime("%d %H:%M") for t in btc_f["ts_exch"]] == [
        "22 11:00", "22 12:00", "22 13:00", "22 14:00"]
    assert rep.funding_hours_missing == 2  # 2025-10-24 21:00 for BTC and ETH: no row near the hour's end


# ----------------------------------------------------------------------------- node trades
def test_node_trades_one_trade_per_identity_taker_side_liquidations_and_counts():
    data, rep = read_archive([TRADES])
    raw = [json.loads(x) for f in sorted(TRADES.glob("*.lz4")) for x in lines(f) if x.startswith("{\"")]
    assert rep.n_bad == 1 and rep.bad_lines[0][:2] == ("11.lz4", 257)
    assert rep.trade_lines == len(raw)
    ident = {(r["coin"], r["time"], r["hash"], r["px"], r["sz"], r["side_info"][0]["oid"], r["side_info"][1]["oid"])
             for r in raw}
    assert rep.trades == len(ident) == len(raw) // 2 == len(data.market.trades)
    # every trade was written as a "B" and an "A" line: the second one is counted, not hidden
    assert rep.counterparty_lines == len(raw) - len(ident) and rep.repeated == 0
    assert rep.duplicates == rep.counterparty_lines
    tr = data.trades
    assert (tr["taker_oid"] > tr["maker_oid"]).all()  # the later order is the taker
    # the sweep: one taker order, one hash, four makers; two at the same price and size
    sweep = tr[tr["hash"] == "0x" + "5e" * 32]
    assert len(sweep) == 4 and sweep["taker_oid"].nunique() == 1 and sweep["maker_oid"].nunique() == 4
    assert sweep["px"].tolist() == [84110.0, 84111.0, 84111.0, 84113.0] and (sweep["side"] == 1).all()
    assert sweep["tid"].nunique() == 4 and (sweep["tid"] >= DERIVED_TID_BIT).all()
    liq = tr[tr["liquidation"]]
    assert liq["dir_override"].tolist() == ["LiquidatedMarket"] and rep.liquidations == 1
    assert liq["side"].tolist() == [-1]  # the liquidated long's order sold into the book
    assert "NetChildVaultPositions" in set(tr["dir_override"])
    last = tr[tr["hash"] == "0x" + "33" * 32]
    assert last["ts_ns"].tolist() == [1742641199999999999]  # 10:59:59.999999999, exact
    assert data.market.trades["ts_exch"].max() < ms("2025-03-22T12:00:00Z")
    # aggressor = taker: the trade stream's side agrees with the detail table
    md = data.market
    assert np.array_equal(md.trades["side"], tr.sort_values("ts_ns", kind="stable")["side"].to_numpy())


def test_hourly_file_reads_its_neighbours_and_keeps_only_its_hour():
    data, rep = read_archive([TRADES / "10.lz4"])
    assert rep.neighbour_files == 1  # 11.lz4 beside it (no 9.lz4 in the fixtures)
    t = data.trades["ts_ns"] // 1_000_000
    assert ((t >= ms("2025-03-22T10:00:00Z")) & (t < ms("2025-03-22T11:00:00Z"))).all()
    assert rep.spill_in == 1  # 10:59:59.999999999, written into the 11:00 file
    assert (data.trades["hash"] == "0x" + "33" * 32).sum() == 1


# ----------------------------------------------------------------------------- fills
def raw_fills(path: Path) -> list[dict]:
    out = []
    for x in lines(path):
        obj = json.loads(x)
        out += [p[1] for p in (obj["events"] if isinstance(obj, dict) else [obj])]
    return out


def test_node_fills_taker_side_once_with_and_without_tid():
    data, rep = read_archive([FILLS])
    fills = raw_fills(FILLS)
    takers = [f for f in fills if f["crossed"]]
    assert rep.trades == len(takers) == len(fills) // 2 and rep.counterparty_lines == len(fills) - len(takers)
    tr = data.trades
    assert rep.no_tid == sum("tid" not in f for f in takers) and rep.taker_missing == 0
    # side = the taker's side
    assert sorted(tr["side"].tolist()) == sorted(1 if f["side"] == "B" else -1 for f in takers)
    sweep = tr[tr["hash"] == "0x" + "aa" * 32]
    assert len(sweep) == 3 and sweep["tid"].tolist() == sorted(sweep["tid"]) and (sweep["maker_oid"] > 0).all()
    no_tid = tr[tr["hash"] == "0x" + "bb" * 32]  # same price, size, order and time; two makers
    assert len(no_tid) == 2 and no_tid["tid"].nunique() == 2
    assert tr[tr["liquidation"]]["hash"].tolist() == ["0x" + "cc" * 32] and rep.liquidations == 1


def test_fills_by_block_spill_over_the_hour_is_read_from_the_neighbour_files():
    ten = ms("2025-07-27T10:00:00Z")
    everything = [f for p in sorted(BLOCKS.glob("*.lz4")) for f in raw_fills(p)]
    want = [f for f in everything if f["crossed"] and ten <= f["time"] < ten + 3_600_000]
    data, rep = read_archive([BLOCKS / "10.lz4"])
    assert rep.files == 1 and rep.neighbour_files == 2
    assert sorted(data.trades["tid"]) == sorted(f["tid"] for f in want)
    in_11 = [f for f in raw_fills(BLOCKS / "11.lz4") if f["crossed"] and f["time"] < ten + 3_600_000]
    assert rep.spill_in == len(in_11) == 2
    early = [f for f in raw_fills(BLOCKS / "10.lz4") if f["time"] < ten]
    assert rep.spill_out == len(early) == 4  # 09:59:59.9 fills in the 10:00 file, both sides
    data, rep = read_archive([BLOCKS])  # all three hours: every taker fill exactly once
    assert sorted(data.trades["tid"]) == sorted(f["tid"] for f in everything if f["crossed"])
    assert rep.spill_out == 0 and rep.repeated == 0


# ----------------------------------------------------------------------------- candles
def test_candle_builder_incremental_equals_vectorized_on_the_sample():
    md = load_sample().select(["BTC", "ETH"], end=int(load_sample().span()[0]) + 6 * 3_600_000)
    t = md.trades
    whole = trade_candles(t["ts_exch"], t["sym"], t["px"], t["sz"], 60_000)
    b = CandleBuilder(60_000, "1m")
    got = []
    for row in t:
        got += b.add(md.symbols[row["sym"]], int(row["ts_exch"]), float(row["px"]), float(row["sz"]))
    got += b.flush()
    inc = MarketData.from_events(got, symbols=md.symbols).candles
    assert len(inc) == len(whole) > 500
    for f in ("ts_exch", "sym", "open", "high", "low", "close", "n"):
        assert np.array_equal(inc[f], whole[f]), f
    np.testing.assert_allclose(inc["volume"], whole["volume"], rtol=1e-12)  # summation order only
    # the sample's own bars are built from the same trades: volume and count agree
    ref = md.candles[np.isin(md.candles["ts_exch"] * 16 + md.candles["sym"], whole["ts_exch"] * 16 + whole["sym"])]
    assert np.allclose(ref["volume"], whole["volume"]) and np.array_equal(ref["n"], whole["n"])


def test_archive_candles_from_trades_and_from_mid_where_no_trade():
    data, rep = read_archive([CTX, TRADES], coins=["BTC", "ETH"])
    md, tr, ctx = data.market, data.trades, data.asset_ctxs
    c = md.candles
    trade_bars = c[c["n"] > 0]
    assert rep.trade_candles == len(trade_bars) and rep.mid_candles == len(c) - len(trade_bars)
    # trade bars: the deduplicated taker prints of their minute
    g = tr.assign(close=(tr["ts_ns"] // 60_000_000_000 + 1) * 60_000).groupby(["symbol", "close"])
    assert int(trade_bars["n"].sum()) == len(tr) and len(g) == len(trade_bars)
    for (sym, close), grp in g:
        bar = trade_bars[(trade_bars["ts_exch"] == close) & (trade_bars["sym"] == md.symbols.index(sym))]
        assert bar["volume"][0] == pytest.approx(grp["sz"].sum()) and bar["open"][0] == grp["px"].iloc[0]
        assert bar["high"][0] == grp["px"].max() and bar["close"][0] == grp["px"].iloc[-1]
    # mid bars: open = the mid at the open minute, close = the mid at the close (never a later one)
    mids = {(s, t): m for s, t, m in zip(ctx["symbol"], ctx["ts_exch"], ctx["mid_px"], strict=True)}
    mid_bars = c[c["n"] == 0]
    assert len(mid_bars) > 200
    for bar in mid_bars:
        s = md.symbols[bar["sym"]]
        assert bar["close"] == mids[(s, int(bar["ts_exch"]))] and bar["open"] == mids[(s, int(bar["ts_exch"]) - 60_000)]
    # BTC 13:20's mid is null: the bars closing at 13:20 and 13:21 have no mid bar
    btc = c[c["sym"] == md.symbols.index("BTC")]
    assert not np.isin([ms("2025-03-22T13:20:00Z"), ms("2025-03-22T13:21:00Z")], btc["ts_exch"]).any()


def test_history_folder_merges_and_trade_bars_replace_mid_bars(tmp_path):
    out = tmp_path / "hist"
    assert record_main(["import", str(CTX), "--no-db", "--out", str(out), "--coins", "BTC,ETH"]) == 0
    first = MarketData.load(out)
    assert (first.candles["n"] == 0).all()
    assert record_main(["import", str(TRADES), "--no-db", "--out", str(out), "--coins", "BTC,ETH"]) == 0
    both = MarketData.load(out)
    direct, _ = read_archive([CTX, TRADES], coins=["BTC", "ETH"])
    assert both.symbols == direct.market.symbols and both.fingerprint() == direct.market.fingerprint()
    assert (both.candles["n"] > 0).sum() > 100
    sig = load_asset_ctxs(out)
    assert len(sig) == len(direct.asset_ctxs) and list(sig["symbol"].unique()) == ["BTC", "ETH"]
    assert len(pd.read_parquet(out / TRADES_FILE)) == len(direct.trades)
    again = record_main(["import", str(CTX), str(TRADES), "--no-db", "--out", str(out), "--coins", "BTC,ETH"])
    assert again == 0 and MarketData.load(out).fingerprint() == both.fingerprint()  # idempotent


def test_record_import_errors_are_one_line(tmp_path, capsys):
    assert record_main(["import", str(tmp_path / "nope"), "--no-db", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope: no such file or directory" in err[0]
    assert record_main(["import", str(CTX), "--no-db"]) == 2
    assert "--out" in capsys.readouterr().err


# ----------------------------------------------------------------------------- backtest
def test_ma_cross_backtests_on_candles_built_from_the_archive(tmp_path):
    from hlquant.backtest.run import run_backtest
    from hlquant.config.compose import load_config

    hist = tmp_path / "hist"
    paths = [str(FIX / "hyperliquid-archive"), str(TRADES)]
    assert record_main(["import", *paths, "--no-db", "--out", str(hist), "--coins", "BTC,ETH"]) == 0
    md = MarketData.load(hist)
    cfg = load_config(["strategy=ma_cross", "progress=false", "data=files", f"data.path={hist}",
                       "strategy.symbols=[BTC,ETH]", "strategy.fast=5", "strategy.slow=20"])
    res = run_backtest(cfg, out_dir=tmp_path / "run")
    m, art = res.metrics, res.artifacts
    assert res.stats["events"] == len(md) and set(md.symbols) == {"BTC", "ETH"}
    assert m["n_fills"] >= 4 and res.stats["reconcile"] == {}
    assert m["final_equity"] == pytest.approx(art.initial_cash + m["net_pnl"])
    # fills happen at prices of the archive bars, funding at the archive's hourly rates
    lo, hi = md.candles["low"].min(), md.candles["high"].max()
    assert art.fills["px"].between(lo * 0.99, hi * 1.01).all()
    rates = set(np.round(md.funding["rate"], 12))
    assert len(art.funding) > 0 and set(np.round(art.funding["rate"], 12)) <= rates
    assert m["funding"] == pytest.approx(art.funding["amount"].sum())
    assert md.counts()["candles"] == len(md.candles) and (md.candles["n"] > 0).any() and (md.candles["n"] == 0).any()


@pytest.mark.postgres
def test_import_into_postgres_streams_and_asset_ctxs_idempotent(pg_store):
    from hlquant.storage.archive import import_archive
    from hlquant.storage.postgres import load_asset_ctxs_pg

    rep = import_archive([CTX, TRADES, L2], store=pg_store, coins=["BTC", "ETH"], progress=False)
    direct, _ = read_archive([CTX, TRADES, L2], coins=["BTC", "ETH"])
    for name, n in direct.market.counts().items():
        if n:
            assert rep.inserted[name] == n, name
    back = pg_store.load_market(["BTC", "ETH"])
    for name in ("candles", "trades", "funding", "mark", "l2"):
        a, b = getattr(back, name), getattr(direct.market, name)
        assert len(a) == len(b) and np.array_equal(a["ts_exch"], b["ts_exch"]), name
    assert np.array_equal(np.sort(back.trades["tid"]), np.sort(direct.market.trades["tid"]))
    sig = load_asset_ctxs_pg(pg_store)
    assert rep.inserted["asset_ctxs"] == len(sig) == len(direct.asset_ctxs)
    pd.testing.assert_frame_equal(sig.reset_index(drop=True), direct.asset_ctxs.reset_index(drop=True),
                                  check_dtype=False)
    again = import_archive([CTX, TRADES, L2], store=pg_store, coins=["BTC", "ETH"], progress=False)
    assert sum(again.inserted.values()) == 0  # re-import inserts nothing
