"""The feature kinds added for research (RSI, ATR, rolling min/max, Bollinger, MACD,
correlation and beta between two symbols): each kernel's incremental form equals its
whole-array form (and chunks of it), and each equals an independent reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hlquant.features import Feature, FeatureSpec, parse_specs


def prices(n=5_000, seed=7, level=100.0):
    rng = np.random.default_rng(seed)
    return level * np.exp(np.cumsum(rng.normal(0, 0.002, n)))


def hlc(n=5_000, seed=7):
    c = prices(n, seed)
    rng = np.random.default_rng(seed + 1)
    h = c * (1 + np.abs(rng.normal(0, 0.001, n)))
    lo = c * (1 - np.abs(rng.normal(0, 0.001, n)))
    return h, lo, c


def spec(kind, inp="candle.close", **p):
    return FeatureSpec(kind, kind, inp, p)


SCALAR = [spec("rsi", period=14), spec("rolling_min", window=20), spec("rolling_max", window=20),
          *[spec("bollinger", window=20, k=2.0, band=b) for b in ("mid", "upper", "lower", "pct_b", "width")],
          *[spec("macd", fast=12, slow=26, signal=9, line=ln) for ln in ("macd", "signal", "hist")]]


def _agree(s, *arrays):
    whole = Feature(s).run(*arrays)
    f = Feature(s)
    inc = np.array([f.update(*(float(a[i]) for a in arrays)) for i in range(len(arrays[0]))])
    np.testing.assert_allclose(inc, whole, rtol=1e-12, equal_nan=True)
    g = Feature(s)
    st = g.state
    chunks = np.concatenate([g.run(*parts, state=st) for parts in zip(*(np.array_split(a, 7) for a in arrays),
                                                                         strict=True)])
    np.testing.assert_allclose(chunks, whole, rtol=1e-12, equal_nan=True)
    return whole


@pytest.mark.parametrize("s", SCALAR, ids=lambda s: f"{s.kind}-{s.params.get('band') or s.params.get('line', '')}")
def test_incremental_equals_whole_array_and_chunks(s):
    x = prices()
    x[1234] = np.nan  # a missing print leaves the state alone
    whole = _agree(s, x)
    assert np.isnan(whole[1234]) and np.isfinite(whole[-1])


def test_atr_and_pair_kernels_agree_incrementally():
    h, lo, c = hlc()
    assert np.isfinite(_agree(spec("atr", "candle.hlc", period=14), h, lo, c)[-1])
    y = prices(seed=11)
    for kind in ("corr", "beta"):
        assert np.isfinite(_agree(spec(kind, ref="BTC", window=50), c, y)[-1])


def wilder(x: pd.Series, n: int) -> pd.Series:
    """Wilder's smoothing: the mean of the first n, then avg = (avg * (n - 1) + x) / n."""
    out = np.full(len(x), np.nan)
    v = x.to_numpy()
    first = n - 1 + np.argmax(~np.isnan(v))  # skip the leading NaN
    out[first] = np.nanmean(v[first - n + 1: first + 1])
    for i in range(first + 1, len(v)):
        out[i] = (out[i - 1] * (n - 1) + v[i]) / n
    return pd.Series(out, index=x.index)


def test_rsi_is_wilders():
    x = pd.Series(prices())
    d = x.diff()
    ag, al = wilder(d.clip(lower=0), 14), wilder((-d).clip(lower=0), 14)
    want = 100 - 100 / (1 + ag / al)
    got = Feature(spec("rsi", period=14)).run(x.to_numpy())
    np.testing.assert_allclose(got, want, rtol=1e-10, equal_nan=True)
    assert np.isnan(got[:14]).all() and np.isfinite(got[14])


def test_atr_is_wilders_true_range():
    h, lo, c = (pd.Series(a) for a in hlc())
    tr = pd.concat([h - lo, (h - c.shift()).abs(), (lo - c.shift()).abs()], axis=1).max(axis=1)
    tr.iloc[0] = h.iloc[0] - lo.iloc[0]
    want = wilder(tr, 14)
    got = Feature(spec("atr", "candle.hlc", period=14)).run(h.to_numpy(), lo.to_numpy(), c.to_numpy())
    np.testing.assert_allclose(got, want, rtol=1e-10, equal_nan=True)


def test_rolling_extremes_bollinger_and_macd_against_pandas():
    x = pd.Series(prices())
    np.testing.assert_allclose(Feature(spec("rolling_min", window=20)).run(x.to_numpy()), x.rolling(20).min(),
                               equal_nan=True)
    np.testing.assert_allclose(Feature(spec("rolling_max", window=20)).run(x.to_numpy()), x.rolling(20).max(),
                               equal_nan=True)
    mid, sd = x.rolling(20).mean(), x.rolling(20).std(ddof=0)
    want = {"mid": mid, "upper": mid + 2 * sd, "lower": mid - 2 * sd,
            "pct_b": (x - (mid - 2 * sd)) / (4 * sd), "width": 4 * sd / mid}
    for band, w in want.items():
        got = Feature(spec("bollinger", window=20, k=2.0, band=band)).run(x.to_numpy())
        np.testing.assert_allclose(got, w, rtol=1e-7, atol=1e-9, equal_nan=True, err_msg=band)
    fast, slow = x.ewm(span=12, adjust=False).mean(), x.ewm(span=26, adjust=False).mean()
    m = fast - slow
    sig = m.ewm(span=9, adjust=False).mean()
    for line, w in (("macd", m), ("signal", sig), ("hist", m - sig)):
        got = Feature(spec("macd", fast=12, slow=26, signal=9, line=line)).run(x.to_numpy())
        np.testing.assert_allclose(got, w, rtol=1e-9, atol=1e-12, err_msg=line)


def test_corr_and_beta_of_log_returns_against_pandas():
    x, y = pd.Series(prices(seed=1)), pd.Series(prices(seed=2))
    y = y * np.exp(0.5 * np.log(x / x.iloc[0]))  # correlated
    rx, ry = np.log(x / x.shift()), np.log(y / y.shift())
    want_corr = rx.rolling(60).corr(ry)
    want_beta = rx.rolling(60).cov(ry) / ry.rolling(60).var()
    got_corr = Feature(spec("corr", ref="R", window=60)).run(x.to_numpy(), y.to_numpy())
    got_beta = Feature(spec("beta", ref="R", window=60)).run(x.to_numpy(), y.to_numpy())
    np.testing.assert_allclose(got_corr, want_corr, rtol=1e-8, equal_nan=True)
    np.testing.assert_allclose(got_beta, want_beta, rtol=1e-8, equal_nan=True)
    assert 0.3 < np.nanmean(got_corr) < 1.0


def test_warmup_derives_from_spans():
    w = {k: Feature(parse_specs([s])[0]).warmup for k, s in {
        "ema": spec("ema", span=50), "rsi": spec("rsi", period=14), "atr": spec("atr", "candle.hlc", period=10),
        "min": spec("rolling_min", window=30), "boll": spec("bollinger", window=20),
        "macd": spec("macd", fast=12, slow=26, signal=9, line="hist"),
        "macd_line": spec("macd", fast=12, slow=26, signal=9, line="macd"),
        "beta": spec("beta", ref="BTC", window=60)}.items()}
    assert w == {"ema": 50, "rsi": 15, "atr": 10, "min": 30, "boll": 20, "macd": 34, "macd_line": 26, "beta": 61}
    assert Feature(FeatureSpec("e", "ema", "candle.close", {"span": 50}, warmup=0)).warmup == 0


def test_spec_errors_for_new_kinds():
    with pytest.raises(ValueError, match="band must be one of"):
        parse_specs([{"name": "b", "kind": "bollinger", "input": "candle.close", "params": {"band": "top"}}])
    with pytest.raises(ValueError, match="fast < slow"):
        parse_specs([{"name": "m", "kind": "macd", "input": "candle.close", "params": {"fast": 30, "slow": 26}}])
    with pytest.raises(ValueError, match=r"missing param\(s\) \['ref'\]"):
        parse_specs([{"name": "c", "kind": "corr", "input": "candle.close", "params": {"window": 5}}])
    with pytest.raises(ValueError, match="cannot read input 'trade.px'"):
        parse_specs([{"name": "c", "kind": "corr", "input": "trade.px", "params": {"window": 5, "ref": "BTC"}}])
    with pytest.raises(ValueError, match="timeframe must be like"):
        parse_specs([{"name": "e", "kind": "ema", "input": "candle.close", "params": {"span": 5},
                      "timeframe": "1 hour"}])
    with pytest.raises(ValueError, match="timeframe needs a candle input"):
        parse_specs([{"name": "e", "kind": "ema", "input": "trade.px", "params": {"span": 5}, "timeframe": "1h"}])
