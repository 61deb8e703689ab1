"""Higher-timeframe features, two-symbol features, warm-up and bar history: the backtest's
columnar form equals the live processor stepping events, and nothing looks ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hlquant.connectors.replay import ReplayConnector
from hlquant.core.events import MarketKind
from hlquant.data.loaders import load_sample
from hlquant.features import FeatureProcessor, InMemoryFeatureStore, compute_columnar
from hlquant.features.pipeline import ColumnarFeatures

SPECS = [
    {"name": "ema_1h", "kind": "ema", "input": "candle.close", "timeframe": "1h", "params": {"span": 3}},
    {"name": "atr_15m", "kind": "atr", "input": "candle.hlc", "timeframe": "15m", "params": {"period": 4}},
    {"name": "vol_4h", "kind": "rolling_mean", "input": "candle.volume", "timeframe": "4h",
     "params": {"window": 2}},
    {"name": "corr_btc", "kind": "corr", "input": "candle.close", "params": {"ref": "BTC", "window": 30}},
    {"name": "beta_sol", "kind": "beta", "input": "candle.close", "params": {"ref": "SOL", "window": 30}},
    {"name": "ema", "kind": "ema", "input": "candle.close", "params": {"span": 20}},
    {"name": "hist", "kind": "history", "input": "candle.close", "params": {"length": 10}},
]


@pytest.fixture(scope="module")
def day():
    md = load_sample()
    return md.select(end=md.span()[0] + 86_400_000)


def test_columnar_equals_event_by_event(day):
    md = day
    cols = compute_columnar(SPECS, md.arrays(), len(md.symbols), md.symbols)
    store = InMemoryFeatureStore()
    proc = FeatureProcessor(SPECS, store, md.symbols)
    feats = ColumnarFeatures(md.symbols)
    feats.bind(cols, md.arrays())
    cur = feats.cursor(MarketKind.CANDLE)
    candles = md.arrays()[MarketKind.CANDLE]
    conn = ReplayConnector(md)
    conn.connect()
    checked = bars_checked = 0
    for ts, kind, row in conn.stream():
        (ev,) = conn.normalize((kind, row))
        proc.on_event(ev)
        if MarketKind(kind) != MarketKind.CANDLE:
            continue
        s = int(candles["sym"][row])
        cur[s] = row
        for name, col in cols.items():
            got = store.get_with_ts(ev.symbol, name)
            want = col.values[row]
            assert got[1] == ts
            assert (np.isnan(want) and np.isnan(got[0])) or abs(got[0] - want) <= 1e-9 * max(1.0, abs(want)), (
                name, ev.symbol, ts, got, want)
            checked += 1
        a, b = proc.bars(ev.symbol, 10), feats.bars(ev.symbol, 10)
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
        assert len(b.ts) == min(10, int((candles["sym"][: row + 1] == s).sum())) and b.ts[-1] == ts
        bars_checked += 1
    assert checked > 20_000 and bars_checked > 4_000
    # every feature became warm and has values
    for name, col in cols.items():
        assert np.isfinite(col.values).sum() > 100, name


def test_higher_timeframe_is_the_resampled_series_without_look_ahead(day):
    md = day
    cols = compute_columnar(SPECS[:1], md.arrays(), len(md.symbols), md.symbols)
    c = md.arrays()[MarketKind.CANDLE]
    btc = c["sym"] == 0
    ts = pd.to_datetime(c["ts_exch"][btc], unit="ms", utc=True)
    close = pd.Series(c["close"][btc], index=ts)
    hourly = close.resample("1h", closed="right", label="right").last()
    want = hourly.ewm(span=3, adjust=False).mean()
    got = pd.Series(cols["ema_1h"].values[btc], index=ts)
    on_hour = got[ts.minute == 0]
    warm = want.iloc[2:]  # warm-up: 3 completed hours
    np.testing.assert_allclose(on_hour.reindex(warm.index), warm, rtol=1e-12)
    # between hour closes the value is the last completed hour's, never the forming one
    mid = got[(ts.minute == 30)].dropna()
    prev_hour = mid.index.floor("1h")
    np.testing.assert_allclose(mid.to_numpy(), want.reindex(prev_hour).to_numpy(), rtol=1e-12)
    # no look-ahead: the value at a time does not change when later data is cut away
    cut = int(md.span()[0] + 10 * 3_600_000 + 17 * 60_000)
    short = compute_columnar(SPECS[:1], md.select(end=cut).arrays(), len(md.symbols), md.symbols)
    n = len(short["ema_1h"].values)
    np.testing.assert_array_equal(short["ema_1h"].values, cols["ema_1h"].values[:n])


def test_pairs_never_use_a_close_not_yet_known(day):
    md = day
    full = compute_columnar(SPECS[3:5], md.arrays(), len(md.symbols), md.symbols)
    cut = int(md.span()[0] + 7 * 3_600_000 + 1)  # keeps the 07:00 candles of every symbol
    short = compute_columnar(SPECS[3:5], md.select(end=cut).arrays(), len(md.symbols), md.symbols)
    for name in ("corr_btc", "beta_sol"):
        n = len(short[name].values)
        np.testing.assert_array_equal(short[name].values, full[name].values[:n])
    with pytest.raises(ValueError, match="reference symbol 'DOGE'"):
        compute_columnar([{"name": "c", "kind": "corr", "input": "candle.close",
                           "params": {"ref": "DOGE", "window": 5}}], md.arrays(), len(md.symbols), md.symbols)


def test_values_are_nan_until_warm_in_both_forms(day):
    md = day.select(symbols=["BTC"])
    spec = [{"name": "e", "kind": "ema", "input": "candle.close", "params": {"span": 50}}]
    col = compute_columnar(spec, md.arrays(), 1, md.symbols)["e"].values
    assert np.isnan(col[:49]).all() and np.isfinite(col[49:]).all()
    store = InMemoryFeatureStore()
    proc = FeatureProcessor(spec, store, md.symbols)
    c = md.arrays()[MarketKind.CANDLE]
    seen = []
    for r in range(60):
        proc.on_candle("BTC", int(c["ts_exch"][r]), *(float(c[f][r]) for f in ("open", "high", "low", "close",
                                                                                 "volume")))
        seen.append(store.get_with_ts("BTC", "e")[0])
    np.testing.assert_array_equal(np.isnan(seen), np.isnan(col[:60]))


def test_processor_state_round_trips_with_observation_counts(day):
    md = day.select(symbols=["BTC", "ETH"])
    c = md.arrays()[MarketKind.CANDLE]
    a = FeatureProcessor(SPECS[:4] + SPECS[5:6], InMemoryFeatureStore(), md.symbols)
    for r in range(len(c) // 2):
        a.on_candle(md.symbols[c["sym"][r]], int(c["ts_exch"][r]),
                    *(float(c[f][r]) for f in ("open", "high", "low", "close", "volume")))
    sa, sb = InMemoryFeatureStore(), InMemoryFeatureStore()
    b = FeatureProcessor(SPECS[:4] + SPECS[5:6], sb, md.symbols)
    for sym in md.symbols:
        assert b.load_state(sym, a.state_of(sym)) == 5
    a.store = sa
    for r in range(len(c) // 2, len(c)):
        args = (md.symbols[c["sym"][r]], int(c["ts_exch"][r]),
                *(float(c[f][r]) for f in ("open", "high", "low", "close", "volume")))
        a.on_candle(*args)
        b.on_candle(*args)
    for sym in md.symbols:
        for s in SPECS[:4] + SPECS[5:6]:
            assert sa.get_with_ts(sym, s["name"]) == sb.get_with_ts(sym, s["name"]), s["name"]
