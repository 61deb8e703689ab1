from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hlquant.core.errors import DataError
from hlquant.core.events import L2_DEPTH, MARKET_DTYPES, MarketKind
from hlquant.data.market import STREAMS, MarketData

T0 = 1_767_571_200_000  # 2026-01-05 00:00 UTC


def rows(kind: MarketKind, recs: list[tuple]) -> np.ndarray:
    return np.array(recs, dtype=MARKET_DTYPES[kind])


def small() -> MarketData:
    """Hand-made ties: equal timestamps across symbols and streams."""
    c = rows(
        MarketKind.CANDLE,
        [
            (T0 + 60_000, T0 + 60_050, 1, 10, 11, 9, 10.5, 3, 2),
            (T0 + 60_000, T0 + 60_040, 0, 100, 101, 99, 100.5, 1, 1),
            (T0 + 120_000, T0 + 120_030, 0, 100.5, 102, 100, 101, 2, 3),
        ],
    )
    t = rows(
        MarketKind.TRADE,
        [
            (T0 + 60_000, T0 + 60_010, 1, 1, 10.5, 1.0, 7),
            (T0 + 60_000, T0 + 60_011, 0, -1, 100.5, 0.5, 5),
            (T0 + 60_000, T0 + 60_012, 0, 1, 100.4, 0.2, 6),
            (T0 + 30_000, T0 + 30_020, 1, -1, 10.1, 2.0, 4),
        ],
    )
    f = rows(MarketKind.FUNDING, [(T0 + 60_000, T0 + 60_001, 1, 1e-5, 0.0, 10.0)])
    return MarketData(candles=c, trades=t, funding=f, symbols=["BTC", "ETH"])


def test_constructor_sorts_and_fills_empty_streams():
    md = small()
    for a in md.arrays().values():
        key = list(zip(a["ts_exch"].tolist(), a["sym"].tolist(), strict=True))
        assert key == sorted(key)
    assert md.trades["tid"].tolist() == [4, 5, 6, 7]  # stable within (ts, sym)
    assert len(md.l2) == 0 and md.l2.dtype == MARKET_DTYPES[MarketKind.L2]
    assert len(md) == 8
    assert md.span() == (T0 + 30_000, T0 + 120_000)
    assert md.counts() == {"funding": 1, "l2": 0, "bbo": 0, "trades": 4, "candles": 3, "mark": 0}


def test_merged_order_ts_then_kind_then_sym_stable():
    md = small()
    ts, kind, row = md.merged()
    got = [(int(t), MarketKind(k).name, int(r)) for t, k, r in zip(ts, kind, row, strict=True)]
    t1 = T0 + 60_000
    assert got == [
        (T0 + 30_000, "TRADE", 0),
        (t1, "FUNDING", 0),
        (t1, "TRADE", 1),  # BTC trade tid 5
        (t1, "TRADE", 2),  # BTC trade tid 6: same (ts, kind, sym), row order kept
        (t1, "TRADE", 3),  # ETH
        (t1, "CANDLE", 0),  # BTC
        (t1, "CANDLE", 1),  # ETH
        (T0 + 120_000, "CANDLE", 2),
    ]
    assert ts.dtype == np.int64 and kind.dtype == np.int8 and row.dtype == np.int64


def test_merged_on_sample_is_a_total_order(sample):
    ts, kind, row = sample.merged()
    assert len(ts) == len(sample)
    sym = np.empty(len(ts), np.int64)
    for k, a in sample.arrays().items():
        m = kind == int(k)
        assert np.array_equal(np.sort(row[m]), np.arange(len(a)))  # each row exactly once
        assert np.all(np.diff(row[m]) > 0)  # streams keep their own order
        sym[m] = a["sym"][row[m]]
        assert np.array_equal(ts[m], a["ts_exch"][row[m]])
    key = np.stack([ts, kind.astype(np.int64), sym])
    d = np.diff(key, axis=1)
    # lexicographic non-decrease of (ts, kind, sym)
    ok = (d[0] > 0) | ((d[0] == 0) & ((d[1] > 0) | ((d[1] == 0) & (d[2] >= 0))))
    assert ok.all()


def test_select_symbols_reindexes_and_filters_time(sample):
    sub = sample.select(["SOL", "BTC"], start="2026-01-06", end=T0 + 2 * 86_400_000)
    assert sub.symbols == ["SOL", "BTC"]
    lo, hi = sub.span()
    assert lo >= T0 + 86_400_000 and hi < T0 + 2 * 86_400_000
    for name in ("candles", "trades", "funding", "l2"):
        a = getattr(sub, name)
        assert set(a["sym"].tolist()) == {0, 1}
    pd.testing.assert_frame_equal(
        sub.candles_frame("SOL"), sample.candles_frame("SOL").loc["2026-01-06":"2026-01-06"]
    )
    pd.testing.assert_frame_equal(
        sub.trades_frame("BTC"),
        sample.trades_frame("BTC").loc[
            lambda f: (f.index >= "2026-01-06") & (f.index < "2026-01-07")
        ],
    )
    with pytest.raises(KeyError, match="DOGE"):
        sample.select(["DOGE"])
    assert sample.select("ETH").symbols == ["ETH"]


def test_frames(sample):
    c = sample.candles_frame("BTC")
    assert list(c.columns) == ["open", "high", "low", "close", "volume"]
    assert str(c.index.tz) == "UTC"
    assert c.index[0] == pd.Timestamp("2026-01-05 00:01", tz="UTC")  # bar close
    assert c.index.is_monotonic_increasing and len(c) == 7 * 1440
    f = sample.funding_frame("ETH")
    assert list(f.columns) == ["rate", "premium", "oracle_px"] and len(f) == 7 * 24
    t = sample.trades_frame("SOL")
    assert set(t["side"].unique()) == {1, -1}


def test_save_load_roundtrip_and_fingerprint(tmp_path):
    md = small()
    md.meta["note"] = "x"
    md.save(tmp_path / "d")
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == sorted(
        f"{s}.parquet" for s in STREAMS.values()
    )
    back = MarketData.load(tmp_path / "d")
    assert back.fingerprint() == md.fingerprint()
    assert back.symbols == md.symbols and back.meta == {"note": "x"}
    for k, a in md.arrays().items():
        assert a.tobytes() == back.arrays()[k].tobytes()
    changed = small()
    changed.candles["close"][0] += 1.0
    assert changed.fingerprint() != md.fingerprint()
    assert MarketData(small().candles, symbols=["BTC", "ETH"]).fingerprint() != md.fingerprint()


def test_l2_roundtrip_with_padding(tmp_path):
    a = np.zeros(1, MARKET_DTYPES[MarketKind.L2])
    a["ts_exch"], a["ts_recv"] = T0, T0 + 5
    a["bid_px"] = np.nan
    a["ask_px"] = np.nan
    a["bid_px"][0, :2] = [99.0, 98.0]
    a["bid_sz"][0, :2] = [1.0, 2.0]
    a["ask_px"][0, :1] = [101.0]
    a["ask_sz"][0, :1] = [3.0]
    md = MarketData(l2=a, symbols=["X"])
    back = MarketData.load(md.save(tmp_path / "l2"))
    assert back.fingerprint() == md.fingerprint()
    assert np.isnan(back.l2["ask_px"][0, 1:]).all() and back.l2["bid_px"].shape == (1, L2_DEPTH)


def test_bad_construction():
    with pytest.raises(DataError, match="sym index out of range"):
        MarketData(candles=small().candles, symbols=["BTC"])
    with pytest.raises(DataError, match="duplicate symbols"):
        MarketData(symbols=["BTC", "BTC"])
    with pytest.raises(DataError, match="no MarketData parquet files"):
        MarketData._read(lambda name: None, "x")
