from __future__ import annotations

import numpy as np
import pytest

from hlquant.core.assets import DEFAULT_ASSETS, AssetSpec
from hlquant.core.events import L2_DEPTH
from hlquant.data.generate import generate, round_prices


def valid(symbol: str, values: np.ndarray) -> bool:
    spec = DEFAULT_ASSETS[symbol]
    vals = np.unique(values[~np.isnan(values)])
    return all(spec.is_valid_price(float(v)) for v in vals)


def test_regenerating_reproduces_bundled_sample(sample):
    again = generate()  # documented defaults = the bundled sample
    assert again.fingerprint() == sample.fingerprint()
    assert generate(seed=8, days=1).fingerprint() != generate(seed=7, days=1).fingerprint()


def test_flags_do_not_change_candles():
    full = generate(days=1, seed=3)
    bare = generate(days=1, seed=3, with_trades=False, with_l2=False)
    assert full.candles.tobytes() == bare.candles.tobytes()
    assert full.funding.tobytes() == bare.funding.tobytes()
    assert len(bare.trades) == 0 and len(bare.l2) == 0


@pytest.mark.parametrize("symbol", ["BTC", "ETH", "SOL"])
def test_stylized_facts(sample, symbol):
    c = sample.candles_frame(symbol)
    r = np.diff(np.log(c["close"].to_numpy()))
    z = r - r.mean()
    kurt = (z**4).mean() / (z**2).mean() ** 2 - 3.0
    assert kurt > 1.0, kurt  # fat tails
    a = np.abs(r) - np.abs(r).mean()
    acf = [float((a[:-lag] * a[lag:]).mean() / (a * a).mean()) for lag in range(1, 11)]
    assert min(acf) > 0.02, acf  # volatility clustering
    ann = r.std() * np.sqrt(365 * 1440)
    assert 0.2 < ann < 1.5, ann


def test_price_levels_and_correlation(sample):
    first = {s: sample.candles_frame(s)["open"].iloc[0] for s in sample.symbols}
    assert first == {"BTC": 90_000.0, "ETH": 3_000.0, "SOL": 150.0}
    ret = {s: np.diff(np.log(sample.candles_frame(s)["close"].to_numpy())) for s in sample.symbols}
    assert np.corrcoef(ret["BTC"], ret["ETH"])[0, 1] > 0.5


@pytest.mark.parametrize("symbol", ["BTC", "ETH", "SOL"])
def test_candles_consistent_and_valid(sample, symbol):
    c = sample.candles_frame(symbol)
    o, h, lo, cl = (c[k].to_numpy() for k in ("open", "high", "low", "close"))
    assert (lo > 0).all() and (h >= np.maximum(o, cl)).all() and (lo <= np.minimum(o, cl)).all()
    assert (o[1:] == cl[:-1]).all()  # continuous path
    assert valid(symbol, np.concatenate([o, h, lo, cl]))
    assert (np.diff(c.index) == np.timedelta64(60_000, "ms")).all()


def test_trades_consistent_with_candles(sample):
    t, c = sample.trades, sample.candles
    assert np.all(np.diff(t["tid"]) == 1)
    bar = (t["ts_exch"] - sample.span()[0] // 60_000 * 60_000) // 60_000  # minute index
    # candle row of each trade: bars are minute-major, symbol-minor
    S = len(sample.symbols)
    ci = bar * S + t["sym"]
    assert np.array_equal(c["ts_exch"][ci] - 60_000, t["ts_exch"] // 60_000 * 60_000)
    assert (t["px"] >= c["low"][ci]).all() and (t["px"] <= c["high"][ci]).all()
    n = np.bincount(ci, minlength=len(c))
    assert np.array_equal(n, c["n"])
    vol = np.bincount(ci, weights=t["sz"], minlength=len(c))
    np.testing.assert_allclose(vol, c["volume"], rtol=1e-9, atol=1e-9)
    assert set(np.unique(t["side"]).tolist()) == {-1, 1}
    for j, s in enumerate(sample.symbols):
        spec = DEFAULT_ASSETS[s]
        m = t["sym"] == j
        assert valid(s, t["px"][m])
        assert all(spec.is_valid_size(float(x)) for x in np.unique(t["sz"][m]))
        assert (t["sz"][m] > 0).all()


def test_l2_snapshots(sample):
    b = sample.l2
    assert b["bid_px"].shape[1] == L2_DEPTH
    assert (np.diff(b["bid_px"], axis=1) < 0).all() and (np.diff(b["ask_px"], axis=1) > 0).all()
    assert (b["bid_px"][:, 0] < b["ask_px"][:, 0]).all()
    assert (b["bid_sz"] > 0).all() and (b["ask_sz"] > 0).all()
    mean_sz = b["bid_sz"][b["sym"] == 0].mean(axis=0)
    assert mean_sz[-1] > 2 * mean_sz[0]  # deeper levels are larger
    assert (b["ts_exch"] % (5 * 60_000) == 0).all()
    for j, s in enumerate(sample.symbols):
        m = b["sym"] == j
        assert valid(s, np.concatenate([b["bid_px"][m].ravel(), b["ask_px"][m].ravel()]))
        mid = (b["bid_px"][m, 0] + b["ask_px"][m, 0]) / 2
        spread_bps = (b["ask_px"][m, 0] - b["bid_px"][m, 0]) / mid * 1e4
        assert np.median(spread_bps) < 5
        close = sample.candles["close"][(sample.candles["sym"] == j)][4::5]
        assert np.all(np.abs(mid / close - 1) < 5e-4)  # book sits around the bar close


def test_funding(sample):
    f = sample.funding
    assert (f["ts_exch"] % 3_600_000 == 0).all()
    assert (np.abs(f["rate"]) <= 0.04).all()
    p = f["premium"]
    expect = (p + np.clip(1e-4 - p, -5e-4, 5e-4)) / 8
    np.testing.assert_allclose(f["rate"], expect)
    for j, s in enumerate(sample.symbols):
        assert valid(s, f["oracle_px"][f["sym"] == j])
    assert np.std(p) > 0


def test_receive_latency(sample):
    for a in sample.arrays().values():
        if len(a):
            lat = a["ts_recv"] - a["ts_exch"]
            assert lat.min() >= 20 and lat.max() <= 80


def test_round_prices_matches_asset_spec():
    rng = np.random.default_rng(0)
    for spec in list(DEFAULT_ASSETS.values()) + [AssetSpec("X", 9, 0, 3)]:
        # from one unit of the finest tick up: below it, rounding to 0 is unavoidable
        px = np.exp(rng.uniform(np.log(10.0**-spec.px_decimals), np.log(200_000), 2000))
        got = round_prices(px, spec.px_decimals)
        assert all(spec.is_valid_price(float(v)) for v in got)
        want = np.array([spec.round_price(float(v)) for v in px])
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_other_symbols_and_options():
    md = generate(symbols=("DOGE", "BTC"), days=0.5, seed=1, l2_every_min=15, trades_per_min=2)
    assert md.symbols == ["DOGE", "BTC"]
    assert len(md.candles) == 720 * 2 and len(md.l2) == 48 * 2 and len(md.funding) == 12 * 2
    assert md.meta["params"]["seed"] == 1
    with pytest.raises(ValueError):
        generate(symbols=())
