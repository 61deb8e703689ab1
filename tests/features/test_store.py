import pytest

from hlquant.core.errors import StaleFeatureError
from hlquant.features import InMemoryFeatureStore, StalenessRules


def test_rules_exact_prefix_default():
    r = StalenessRules({"default": 500, "sentiment*": 300_000, "sentiment_x": 10, "funding*": 7_200_000})
    assert r.max_age("price") == 500
    assert r.max_age("sentiment_y") == 300_000
    assert r.max_age("sentiment_x") == 10
    assert r.max_age("funding_ema") == 7_200_000


def test_stale_read_refused_and_counted():
    s = InMemoryFeatureStore({"default": 500, "slow*": 60_000})
    s.put_many("BTC", [("px", 1.0), ("slow_ema", 2.0)], ts=1000)
    assert s.get("BTC", "px", 1500) == 1.0
    with pytest.raises(StaleFeatureError, match="501 ms old, limit 500 ms"):
        s.get("BTC", "px", 1501)
    assert s.get("BTC", "slow_ema", 50_000) == 2.0
    with pytest.raises(StaleFeatureError, match="never written"):
        s.get("ETH", "px", 1000)
    assert s.stale_reads == {"px": 2}
    assert s.get_with_ts("BTC", "px") == (1.0, 1000)
