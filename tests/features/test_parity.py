"""The backtest path (compute_columnar over streams) and the live path
(FeatureProcessor stepping events) produce the same numbers."""

import numpy as np

from hlquant.connectors.replay import ReplayConnector
from hlquant.core.events import MarketKind
from hlquant.data.loaders import load_sample
from hlquant.features import FeatureProcessor, InMemoryFeatureStore, compute_columnar

SPECS = [
    {"name": "ema", "kind": "ema", "input": "candle.close", "params": {"span": 12}},
    {"name": "z", "kind": "zscore", "input": "candle.close", "params": {"window": 20}},
    {"name": "rv", "kind": "realized_vol", "input": "candle.close", "params": {"window": 30}},
    {"name": "vwap", "kind": "vwap", "input": "trade", "params": {"window": 50}},
    {"name": "obi", "kind": "obi", "input": "l2", "params": {"depth": 5}},
    {"name": "fr", "kind": "ema", "input": "funding.rate", "params": {"span": 3}},
]


def test_columnar_equals_event_by_event():
    md = load_sample().select(end=load_sample().span()[0] + 86_400_000)
    cols = compute_columnar(SPECS, md.arrays(), len(md.symbols))
    store = InMemoryFeatureStore()
    proc = FeatureProcessor(SPECS, store, md.symbols)
    arrays = md.arrays()
    checked = 0
    conn = ReplayConnector(md)
    conn.connect()
    for ts, kind, row in conn.stream():
        (ev,) = conn.normalize((kind, row))
        if proc.on_event(ev):
            for name, col in cols.items():
                if col.kind == MarketKind(kind):
                    got = store.get_with_ts(ev.symbol, name)
                    want = col.values[row]
                    assert got[1] == ts
                    assert (np.isnan(want) and np.isnan(got[0])) or abs(got[0] - want) <= 1e-9 * max(1.0, abs(want)), name
                    checked += 1
    assert checked > 10_000
    assert set(cols) == {s["name"] for s in SPECS}
    assert len(cols["vwap"].values) == len(arrays[MarketKind.TRADE])
