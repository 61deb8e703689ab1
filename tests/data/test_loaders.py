from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hlquant.core.errors import DataError
from hlquant.data.loaders import load, load_files, load_sample, write_files
from hlquant.data.market import MarketData

T0 = 1_767_571_200_000  # 2026-01-05 00:00 UTC


@pytest.fixture(scope="module")
def day(sample) -> MarketData:
    return sample.select(end="2026-01-05 06:00")


def write(d: Path, name: str, text: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    p.write_text(textwrap.dedent(text).lstrip())
    return p


GOOD_CANDLES = """\
ts,symbol,open,high,low,close,volume
1767571200000,BTC,100,101,99,100.5,1
1767571260000,BTC,100.5,102,100,101,2
1767571200000,ETH,10,11,9,10.5,3
"""


def test_load_sample_and_dispatch(sample, tmp_path):
    assert load("sample").fingerprint() == sample.fingerprint()
    assert load_sample().symbols == ["BTC", "ETH", "SOL"]
    sample.select("ETH").save(tmp_path / "native")  # MarketData.save output is recognised
    assert load(tmp_path / "native").fingerprint() == sample.select("ETH").fingerprint()
    assert load(str(tmp_path / "native"), symbols=["ETH"]).symbols == ["ETH"]
    assert load(sample) is sample


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_files_roundtrip_equals_source(day, tmp_path, fmt):
    d = write_files(day, tmp_path / fmt, fmt=fmt)
    assert (d / f"candles.{fmt}").is_file() and (d / f"l2.{fmt}").is_file()
    back = load_files(d)
    assert back.symbols == day.symbols and back.interval_ms == 60_000
    for k, a in day.arrays().items():
        assert a.tobytes() == back.arrays()[k].tobytes(), k
    assert back.fingerprint() == day.fingerprint()


def test_candle_ts_close_and_single_file(day, tmp_path):
    d = write_files(day.select(["SOL"]), tmp_path / "c", fmt="csv", candle_ts="close")
    back = load_files(d / "candles.csv", candle_ts="close")
    assert back.candles.tobytes() == day.select(["SOL"]).candles.tobytes()
    assert len(back.trades) == 0  # a single file is the candles only


def test_user_formats_iso_unsorted_sides(tmp_path):
    d = tmp_path / "u"
    write(
        d,
        "candles.csv",
        """\
        TS,Symbol,Open,High,Low,Close,Volume
        2026-01-05T00:05:00Z,ETH,10,11,9,10.5,3
        2026-01-05 00:00:00,BTC,100,101,99,100.5,1
        2026-01-05T00:05:00+00:00,BTC,100.5,102,100,101,2
        """,
    )
    write(
        d,
        "trades.csv",
        """\
        ts,symbol,side,px,sz
        1767571230000,BTC,sell,100.2,0.5
        1767571210000,BTC,Buy,100.1,0.1
        1767571210000,ETH,A,10.1,1
        """,
    )
    md = load_files(d)
    assert md.symbols == ["BTC", "ETH"]
    assert md.interval_ms == 300_000  # inferred from the smallest step
    assert md.candles["ts_exch"].tolist() == [T0 + 300_000, T0 + 600_000, T0 + 600_000]
    assert md.candles["sym"].tolist() == [0, 0, 1]
    assert md.candles["ts_recv"].tolist() == md.candles["ts_exch"].tolist()
    assert md.trades["side"].tolist() == [1, -1, -1]
    assert md.trades["sym"].tolist() == [0, 1, 0]
    assert md.trades["tid"].tolist() == [1, 2, 0]  # default tid = file row order
    only = load_files(d, symbols=["ETH"])
    assert only.symbols == ["ETH"] and len(only.candles) == 1 and len(only.trades) == 1


def test_parquet_with_datetimes_and_funding(tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    ts = pd.to_datetime(["2026-01-05 00:00", "2026-01-05 00:01"], utc=True)
    pd.DataFrame(
        {
            "ts": ts,
            "symbol": ["SOL", "SOL"],
            "open": [1.0, 2.0],
            "high": [2.0, 3.0],
            "low": [1.0, 2.0],
            "close": [2.0, 2.5],
            "volume": [5.0, 6.0],
            "n": [3, 4],
        }
    ).to_parquet(d / "candles.parquet")
    pd.DataFrame({"ts": ts[:1], "symbol": ["SOL"], "rate": [1.25e-5]}).to_parquet(
        d / "funding.parquet"
    )
    md = load_files(d)
    assert md.candles["ts_exch"].tolist() == [T0 + 60_000, T0 + 120_000]
    assert md.candles["n"].tolist() == [3, 4]
    f = md.funding[0]
    assert f["rate"] == 1.25e-5 and f["premium"] == 0.0 and np.isnan(f["oracle_px"])


def test_l2_long_format_pads_and_drops_deep_levels(tmp_path):
    d = tmp_path / "l2"
    write(d, "candles.csv", GOOD_CANDLES)
    rows = ["ts,symbol,level,bid_px,bid_sz,ask_px,ask_sz"]
    rows += [f"{T0},BTC,{lv},{99 - lv},1,{101 + lv},2" for lv in (1, 0, 12)]
    rows += [f"{T0},BTC,2,96,3,,"]
    write(d, "l2.csv", "\n".join(rows) + "\n")
    md = load_files(d)
    b = md.l2[0]
    assert b["bid_px"][:4].tolist()[:3] == [99.0, 98.0, 96.0] and np.isnan(b["bid_px"][3])
    assert b["ask_px"][:2].tolist() == [101.0, 102.0] and np.isnan(b["ask_px"][2])
    assert b["ask_sz"][2] == 0.0 and b["bid_sz"][2] == 3.0


BAD_CASES = [
    (  # high below low
        "candles.csv",
        GOOD_CANDLES.replace("100.5,102,100,101,2", "100.5,99.5,100,101,2"),
        "candles.csv row 2: column 'high' is 99.5, below 'low' 100.0",
    ),
    (
        "candles.csv",
        GOOD_CANDLES.replace("10,11,9,10.5,3", "12,11,9,10.5,3"),
        "candles.csv row 3: column 'open' is 12.0, outside [low, high] = [9.0, 11.0]",
    ),
    (
        "candles.csv",
        GOOD_CANDLES.replace("10,11,9,10.5,3", "10,11,9,8.5,3"),
        "candles.csv row 3: column 'close' is 8.5, outside [low, high] = [9.0, 11.0]",
    ),
    (
        "candles.csv",
        GOOD_CANDLES.replace(",volume\n", "\n"),
        "candles.csv: missing column 'volume' (have: ts, symbol, open, high, low, close)",
    ),
    (
        "candles.csv",
        GOOD_CANDLES.replace("100.5,102,100,101,2", "100.5,102,abc,101,2"),
        "candles.csv row 2: column 'low' is 'abc', not a number",
    ),
    (
        "candles.csv",
        GOOD_CANDLES.replace("100.5,102,100,101,2", "100.5,102,100,,2"),
        "candles.csv row 2: column 'close' is empty",
    ),
    (
        "candles.csv",
        GOOD_CANDLES.replace("100.5,102,100,101,2", "100.5,102,100,NaN,2"),
        "candles.csv row 2: column 'close' is NaN",
    ),
    (
        "candles.csv",
        GOOD_CANDLES.replace("10,11,9,10.5,3", "10,11,-9,10.5,3"),
        "candles.csv row 3: column 'low' is -9.0, must be > 0",
    ),
    (
        "candles.csv",
        GOOD_CANDLES.replace("10,11,9,10.5,3", "10,11,9,10.5,-3"),
        "candles.csv row 3: column 'volume' is -3.0, must be >= 0",
    ),
    (
        "candles.csv",
        GOOD_CANDLES.replace("1767571200000,ETH", "1767571260000,BTC"),
        "candles.csv row 3: duplicate (ts, symbol) = (2026-01-05T00:01:00+00:00, 'BTC'), "
        "first at row 2",
    ),
    (
        "candles.csv",
        GOOD_CANDLES.replace("1767571260000,BTC", "yesterday,BTC"),
        "candles.csv row 2: column 'ts' is 'yesterday', not a timestamp "
        "(int ms since epoch or ISO-8601)",
    ),
    (
        "candles.csv",
        GOOD_CANDLES.replace("1767571260000,BTC", ",BTC"),
        "candles.csv row 2: column 'ts' is empty",
    ),
    (
        "trades.csv",
        "ts,symbol,side,px,sz\n1767571200000,BTC,B,100,1\n1767571200001,BTC,X,100,1\n",
        "trades.csv row 2: column 'side' is 'X', expected B/A (or buy/sell, 1/-1)",
    ),
    (
        "trades.csv",
        "ts,symbol,side,px,sz\n1767571200000,BTC,B,100,0\n",
        "trades.csv row 1: column 'sz' is 0.0, must be > 0",
    ),
    (
        "trades.csv",
        "ts,symbol,side,px\n1767571200000,BTC,B,100\n",
        "trades.csv: missing column 'sz' (have: ts, symbol, side, px)",
    ),
    (
        "funding.csv",
        "ts,symbol,rate\n1767571200000,BTC,1e-5\n1767571200000,,1e-5\n",
        "funding.csv row 2: column 'symbol' is empty",
    ),
    (
        "bbo.csv",
        "ts,symbol,bid_px,bid_sz,ask_px,ask_sz\n1767571200000,BTC,101,1,100,1\n",
        "bbo.csv row 1: column 'ask_px' is 100.0, not above 'bid_px' 101.0",
    ),
    (
        "l2.csv",
        "ts,symbol,level,bid_px,bid_sz,ask_px,ask_sz\n"
        "1767571200000,BTC,0,99,1,101,1\n1767571200000,BTC,0,98,1,102,1\n",
        "l2.csv row 2: duplicate (ts, symbol, level) = (2026-01-05T00:00:00+00:00, 'BTC', 0), "
        "first at row 1",
    ),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD_CASES)
def test_bad_files_name_file_column_row(tmp_path, name, text, message):
    d = tmp_path / "bad"
    write(d, "candles.csv", GOOD_CANDLES)
    write(d, name, text)
    with pytest.raises(DataError) as e:
        load_files(d)
    assert str(e.value) == message


def test_bad_parquet_types_and_missing_files(tmp_path):
    d = tmp_path / "pq"
    d.mkdir()
    pd.DataFrame(
        {
            "ts": [T0, T0 + 60_000],
            "symbol": ["BTC", "BTC"],
            "open": [1.0, np.nan],
            "high": [1.0, 1.0],
            "low": [1.0, 1.0],
            "close": [1.0, 1.0],
            "volume": [1.0, 1.0],
        }
    ).to_parquet(d / "candles.parquet")
    with pytest.raises(DataError, match=r"^candles.parquet row 2: column 'open' is NaN$"):
        load_files(d)
    with pytest.raises(DataError, match="no such file or directory"):
        load_files(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="missing candles file"):
        load_files(tmp_path / "empty")
    # a foreign parquet file is not mistaken for MarketData.save output
    pq.write_table(pa.table({"x": [1]}), tmp_path / "x.parquet")
    with pytest.raises(DataError, match="missing column 'ts'"):
        load_files(tmp_path / "x.parquet")
