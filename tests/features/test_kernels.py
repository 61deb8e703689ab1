import numpy as np
import pandas as pd
import pytest

from hlquant.features import Feature, FeatureSpec, build_feature, parse_specs


def garch_prices(n=20_000, seed=3, level=90_000.0):
    rng = np.random.default_rng(seed)
    r = np.empty(n)
    var = 1e-8
    for i in range(n):
        var = 1e-10 + 0.1 * (r[i - 1] ** 2 if i else 0) + 0.88 * var
        r[i] = np.sqrt(var) * rng.standard_t(4) / np.sqrt(2.0)
    return level * np.exp(np.cumsum(r))


def spec(kind, inp="candle.close", **p):
    return FeatureSpec(kind, kind, inp, p)


@pytest.mark.parametrize(
    "s",
    [spec("ema", span=20), spec("rolling_mean", window=50), spec("rolling_std", window=50),
     spec("zscore", window=30), spec("log_return"), spec("realized_vol", window=60, annualize=525600)],
)
def test_incremental_equals_whole_array_and_chunks(s):
    x = garch_prices()
    x[1234] = np.nan  # a missing print must not poison the state
    whole = Feature(s).run(x)
    f = Feature(s)
    inc = np.array([f.update(v) for v in x])
    np.testing.assert_allclose(inc, whole, rtol=1e-12, equal_nan=True)
    g = Feature(s)
    st = g.state
    chunks = np.concatenate([g.run(c, state=st) for c in np.array_split(x, 7)])
    np.testing.assert_allclose(chunks, whole, rtol=1e-12, equal_nan=True)
    assert np.isnan(whole[1234])
    assert np.isfinite(whole[-1])


def test_against_pandas_with_large_offset():
    x = garch_prices(100_000, level=90_000.0)
    s = pd.Series(x)
    np.testing.assert_allclose(Feature(spec("rolling_mean", window=100)).run(x), s.rolling(100).mean(),
                               rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(Feature(spec("rolling_std", window=100)).run(x), s.rolling(100).std(),
                               rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(Feature(spec("ema", span=20)).run(x), s.ewm(span=20, adjust=False).mean(),
                               rtol=1e-12)
    z = (s - s.rolling(30).mean()) / s.rolling(30).std()
    np.testing.assert_allclose(Feature(spec("zscore", window=30)).run(x), z, rtol=1e-5, atol=1e-6,
                               equal_nan=True)
    lr = np.log(s / s.shift())
    np.testing.assert_allclose(Feature(spec("log_return")).run(x), lr, rtol=1e-12, equal_nan=True)
    rv = np.sqrt((lr**2).rolling(60).sum())
    np.testing.assert_allclose(Feature(spec("realized_vol", window=60)).run(x), rv, rtol=1e-8,
                               equal_nan=True)


def test_vwap_and_obi():
    rng = np.random.default_rng(1)
    px = 100 + rng.normal(0, 1, 1000)
    sz = rng.lognormal(0, 1, 1000)
    v = Feature(FeatureSpec("v", "vwap", "trade", {"window": 10})).run(px, sz)
    exp = (pd.Series(px * sz).rolling(10, min_periods=1).sum() / pd.Series(sz).rolling(10, min_periods=1).sum())
    np.testing.assert_allclose(v, exp, rtol=1e-9)
    bids = np.array([[3.0, 1.0, 100.0], [1.0, 1.0, 1.0]])
    asks = np.array([[1.0, 1.0, 0.0], [3.0, 1.0, 1.0]])
    o = Feature(FeatureSpec("o", "obi", "l2", {"depth": 2})).run(bids, asks)
    np.testing.assert_allclose(o, [(4 - 2) / 6, (2 - 4) / 6])
    f = build_feature({"name": "o", "kind": "obi", "input": "l2", "params": {"depth": 2, "smooth_span": 3}})
    assert f.update(bids[0], asks[0]) == pytest.approx(1 / 3)
    assert f.update(bids[1], asks[1]) == pytest.approx(1 / 3 + 0.5 * (-1 / 3 - 1 / 3))


def test_spec_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown kind 'macdx'"):
        parse_specs([{"name": "m", "kind": "macdx", "input": "candle.close"}])
    with pytest.raises(ValueError, match="cannot read input 'l2'"):
        parse_specs([{"name": "e", "kind": "ema", "input": "l2", "params": {"span": 3}}])
    with pytest.raises(ValueError, match=r"missing param\(s\) \['window'\]"):
        parse_specs([{"name": "r", "kind": "rolling_std", "input": "candle.close"}])
    with pytest.raises(ValueError, match="unknown param"):
        parse_specs([{"name": "r", "kind": "ema", "input": "candle.close", "params": {"spam": 3}}])
    with pytest.raises(ValueError, match="window must be >= 2"):
        parse_specs([{"name": "r", "kind": "rolling_std", "input": "candle.close", "params": {"window": 1}}])
    with pytest.raises(ValueError, match="declared twice"):
        parse_specs([{"name": "a", "kind": "log_return", "input": "candle.close"}] * 2)
