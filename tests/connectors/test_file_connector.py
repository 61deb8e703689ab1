"""The Signal event and the file connector: schema, row-level errors, history, recorded stream."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from hlquant.bus.redis_state import pack, unpack
from hlquant.connectors.base import topic_for
from hlquant.connectors.file import FileConnector
from hlquant.core.errors import DataError
from hlquant.core.events import Signal, event_from_record
from hlquant.data.series import SignalSeries, read_signal_file

T0 = 1_767_571_200_000  # 2026-01-05 00:00 UTC


def test_signal_event_round_trips_through_the_bus_encoding():
    for ev in (Signal(T0, T0 + 5, "sentiment", 0.25, "BTC"), Signal(T0, T0 + 5, "fear_greed", 41.0)):
        assert unpack(pack(ev)) == ev
        assert event_from_record(ev.to_record()) == ev
    assert topic_for(Signal(T0, T0, "s", 1.0, "BTC")) == "Signal:{BTC}"
    assert topic_for(Signal(T0, T0, "s", 1.0)) == "Signal"  # a market-wide series


def test_csv_rows_become_series_received_at_ts_plus_lag(tmp_path):
    p = tmp_path / "sentiment.csv"
    p.write_text("TS,Symbol,Sentiment,Volume_Z\n"
                 f"{T0},BTC,0.5,1.0\n"
                 f"{T0},ETH,-0.25,\n"  # empty cell: no observation of volume_z here
                 "2026-01-05T00:01:00,BTC,0.75,2.0\n")
    s = read_signal_file(p, lag_ms=30_000)
    f = s.to_frame().sort_values(["name", "ts_exch", "symbol"]).reset_index(drop=True)
    assert f["name"].tolist() == ["sentiment", "sentiment", "sentiment", "volume_z", "volume_z"]
    assert f["symbol"].tolist() == ["BTC", "ETH", "BTC", "BTC", "BTC"]
    assert f["value"].tolist() == [0.5, -0.25, 0.75, 1.0, 2.0]
    assert (f["ts_recv"] - f["ts_exch"]).eq(30_000).all()
    assert f["ts_exch"].tolist()[2] == T0 + 60_000  # ISO text, naive = UTC
    assert np.all(np.diff(s.ts_recv) >= 0)  # sorted by receive time
    only = read_signal_file(p, columns=["sentiment"], prefix="ext.")
    assert only.names() == {"ext.sentiment"}


def test_parquet_with_receive_times_and_a_market_wide_series(tmp_path):
    p = tmp_path / "macro.parquet"
    pd.DataFrame({"ts": pd.to_datetime([T0, T0 + 3_600_000], unit="ms"),
                  "ts_recv": [T0 + 900_000, T0 + 3_700_000], "cpi_surprise": [0.1, -0.2]}).to_parquet(p)
    s = read_signal_file(p)
    assert s.symbol.tolist() == [None, None]
    assert s.ts_recv.tolist() == [T0 + 900_000, T0 + 3_700_000]
    assert [e.symbol for e in s.events()] == [None, None]


@pytest.mark.parametrize("body, message", [
    ("ts,symbol,sentiment\n1767571200000,BTC,0.5\n1767571260000,BTC,high\n", "sentiment.csv row 2: column 'sentiment' is 'high', not a number"),
    ("ts,symbol,sentiment\n1767571200000,BTC,0.5\nsoon,BTC,0.1\n", "sentiment.csv row 2: column 'ts' is 'soon', not a timestamp"),
    ("ts,ts_recv,symbol,sentiment\n1767571800000,1767571740000,BTC,0.5\n", "sentiment.csv row 1: column 'ts_recv' is 1767571740000, before 'ts' 1767571800000"),
    ("ts,symbol,sentiment\n1767571200000,BTC,0.5\n1767571200000,BTC,0.6\n", "sentiment.csv row 2: duplicate (ts, symbol)"),
    ("ts,symbol,sentiment\n1767571200000,,0.5\n", "sentiment.csv row 1: column 'symbol' is empty"),
    ("ts,symbol,sentiment\n1767571200000,BTC,inf\n", "sentiment.csv row 1: column 'sentiment' is"),
    ("time,symbol,sentiment\n1767571200000,BTC,0.5\n", "sentiment.csv: missing column 'ts'"),
    ("ts,symbol\n1767571200000,BTC\n", "sentiment.csv: no value column"),
])
def test_a_bad_file_names_file_column_and_row(tmp_path, body, message):
    p = tmp_path / "sentiment.csv"
    p.write_text(body)
    with pytest.raises(DataError) as e:
        read_signal_file(p)
    assert message in str(e.value)


def test_missing_requested_column_and_missing_file(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("ts,sentiment\n1,0.5\n")
    with pytest.raises(DataError, match="s.csv: missing column 'mood'"):
        read_signal_file(p, columns=["mood"])
    with pytest.raises(DataError, match="no such file"):
        read_signal_file(tmp_path / "nope.csv")


def test_recorded_stream_emits_the_state_then_rows_as_their_time_comes(tmp_path):
    """Paper/live: the latest row of each series already received, then each row when its
    receive time passes; rows appended while running are picked up; a broken append is
    counted and the last good file stays in use."""
    p = tmp_path / "s.csv"
    now = [T0 + 10_000]
    p.write_text("ts,symbol,sentiment\n"
                 f"{T0},BTC,0.1\n{T0 + 5_000},BTC,0.2\n{T0},ETH,0.3\n"  # past: only the latest per series
                 f"{T0 + 20_000},BTC,0.4\n")  # future: when its time comes
    c = FileConnector(p, poll_s=0.01, clock_ms=lambda: now[0])
    got: list[Signal] = []

    async def run() -> None:
        stop = asyncio.Event()

        async def drive() -> None:
            await _until(lambda: len(got) == 2)
            now[0] = T0 + 25_000
            await _until(lambda: len(got) == 3)
            with p.open("a") as f:  # a recorder appends
                f.write(f"{T0 + 30_000},ETH,0.5\n")
            now[0] = T0 + 31_000
            await _until(lambda: len(got) == 4)
            with p.open("a") as f:
                f.write(f"{T0 + 40_000},ETH,not-a-number\n")
            now[0] = T0 + 41_000
            await _until(lambda: c.counters["bad_messages"] >= 1)
            stop.set()

        task = asyncio.ensure_future(drive())
        async for ev in c.events(stop):
            got.append(ev)
        await task

    asyncio.run(asyncio.wait_for(run(), 20))
    assert [(e.symbol, e.value) for e in got] == [("ETH", 0.3), ("BTC", 0.2), ("BTC", 0.4), ("ETH", 0.5)]
    assert got[2].ts_exch == T0 + 20_000
    assert c.counters["bad_messages"] >= 1 and c.counters["events"] == 4


async def _until(cond, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


def test_series_select_keeps_market_wide_rows():
    s = SignalSeries(np.array([1, 2, 3]), np.array([1, 2, 3]), np.array(["BTC", None, "DOGE"], object),
                     np.array(["a", "a", "a"], object), np.array([1.0, 2.0, 3.0]))
    assert s.select(symbols=["BTC"]).value.tolist() == [1.0, 2.0]
    assert s.select(start=2, end=3).value.tolist() == [2.0]
