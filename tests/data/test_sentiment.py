"""The synthetic sentiment series: seeded, and correlated with future returns by the set amount."""

from __future__ import annotations

import numpy as np
import pytest

from hlquant.data.loaders import load_sample
from hlquant.data.sentiment import synthetic_sentiment, synthetic_sentiment_series


@pytest.fixture(scope="module")
def md():
    return load_sample()


@pytest.mark.parametrize("corr", [0.0, 0.3, 0.7, -0.5])
def test_correlation_with_the_forward_return_is_the_configured_amount(md, corr):
    f = synthetic_sentiment(md, corr=corr, horizon_min=30, every_min=5, seed=3)
    assert len(f) > 5_000  # 3 symbols x 7 days / 5 min, less the last horizon
    measured = np.corrcoef(f["sentiment"], f["fwd_return"])[0, 1]
    assert measured == pytest.approx(corr, abs=0.05)  # sd of a sample correlation here ~0.013
    assert f["sentiment"].std() == pytest.approx(1.0, abs=0.05)


def test_seeded_and_documented_times(md):
    a = synthetic_sentiment(md, seed=1)
    b = synthetic_sentiment(md, seed=1)
    c = synthetic_sentiment(md, seed=2)
    assert a.equals(b) and not a["sentiment"].equals(c["sentiment"])
    assert (a["ts_recv"] - a["ts"]).eq(30_000).all()
    assert (a["ts"] % 300_000 == int(md.span()[0]) % 300_000).all() or (a["ts"].diff().dropna() >= 0).all()
    last = md.candles["ts_exch"].max()
    assert (a["ts"] + 30 * 60_000 <= last).all()  # the horizon never runs past the data
    s = synthetic_sentiment_series(md, seed=1)
    assert len(s) == len(a) and s.names() == {"sentiment"} and np.all(np.diff(s.ts_recv) >= 0)


def test_bad_settings_are_refused(md):
    with pytest.raises(ValueError, match="corr"):
        synthetic_sentiment(md, corr=1.5)
    with pytest.raises(ValueError, match="lag_ms"):
        synthetic_sentiment(md, lag_ms=-1)
