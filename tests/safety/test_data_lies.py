"""Data that silently lies (issue 11, item 10), tried as a user does: ``hlquant backtest
data=files data.path=DIR`` on crafted copies of one day of the bundled sample. Every
rejection is one line, ``error: FILE row N: column 'C' ...`` (file-level ones name the
file and column), with exit code 1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hlquant.core.errors import DataError
from hlquant.data.loaders import infer_interval, load_files, load_sample, write_files

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_767_571_200_000  # 2026-01-05 00:00 UTC, the first bar of the day used here


def hlquant(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("HLQUANT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "hlquant.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """One day of BTC in the user file format (candles, trades, l2, funding as CSV)."""
    md = load_sample().select(["BTC"], end="2026-01-06")
    return write_files(md, tmp_path_factory.mktemp("data") / "base", fmt="csv")


def edit_csv(name: str, fn: Callable[[pd.DataFrame], None]) -> Callable[[Path], None]:
    def mutate(d: Path) -> None:
        df = pd.read_csv(d / name)
        fn(df)
        df.to_csv(d / name, index=False)
    return mutate


def edit_lines(name: str, fn: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def mutate(d: Path) -> None:
        (d / name).write_text("\n".join(fn((d / name).read_text().splitlines())) + "\n")
    return mutate


def set_cell(line: str, col: int, value: str) -> str:
    parts = line.split(",")
    parts[col] = value
    return ",".join(parts)


def shift_bar_16(df):
    df.loc[16, "ts"] += 1000  # one bar a second late


def level0_rows(df) -> np.ndarray:
    return np.flatnonzero(df["level"].to_numpy() == 0)


def cross_third_book(df):
    i = level0_rows(df)[2]
    df.loc[i, "bid_px"] = df.loc[i, "ask_px"] + 5


def swap_bid_levels(df):
    i = level0_rows(df)[1]  # second snapshot: level 2's bid above level 1's
    df.loc[i + 1, "bid_px"], df.loc[i + 2, "bid_px"] = df.loc[i + 2, "bid_px"], df.loc[i + 1, "bid_px"]


def zero_size(df):
    df.loc[4, "ask_sz"] = 0.0


CASES = [  # id, mutation, the error line after "error: "
    ("off-grid bar", edit_csv("candles.csv", shift_bar_16),
     "candles.csv row 17: column 'ts' is 2026-01-05T00:16:01+00:00, off the 1m grid of BTC (1 of 1439 bars; "
     "1m is the most common step between bars); data.irregular=accept keeps them"),
    ("seconds", edit_csv("candles.csv", lambda df: df.__setitem__("ts", df["ts"] // 1000)),
     "candles.csv row 1: column 'ts' is '1767571200', before 2015-01-01 read as milliseconds: it looks like "
     "seconds since epoch (multiply by 1000)"),
    ("microseconds", edit_csv("candles.csv", lambda df: df.__setitem__("ts", df["ts"] * 1000)),
     "candles.csv row 1: column 'ts' is '1767571200000000', more than a day in the future read as milliseconds: "
     "it looks like microseconds since epoch (divide by 1000)"),
    ("nanoseconds", edit_csv("trades.csv", lambda df: df.__setitem__("ts_recv", df["ts_recv"] * 1_000_000)),
     "trades.csv row 1: column 'ts_recv' is '1767571203685000000', more than a day in the future read as "
     "milliseconds: it looks like nanoseconds since epoch (divide by 1,000,000)"),
    ("negative", edit_lines("candles.csv", lambda t: [*t[:6], set_cell(t[6], 0, "-60000"), *t[7:]]),
     "candles.csv row 6: column 'ts' is '-60000', negative (a time is ms since 1970-01-01 UTC)"),
    ("overflowing", edit_lines("candles.csv", lambda t: [*t[:6], set_cell(t[6], 0, "9" * 23), *t[7:]]),
     f"candles.csv row 6: column 'ts' is '{'9' * 23}', too large for a timestamp (int ms since epoch)"),
    ("far future", edit_lines("trades.csv", lambda t: [*t[:3], set_cell(t[3], 0, "2099-01-01T00:00:00Z"), *t[4:]]),
     "trades.csv row 3: column 'ts' is '2099-01-01T00:00:00Z', more than a day in the future"),
    ("price 1e300", edit_csv("candles.csv", lambda df: df.loc.__setitem__((7, ["open", "high", "low", "close"]), 1e300)),
     "candles.csv row 8: column 'open' is 1e+300, beyond the sanity bound 1e+09 (absolute value)"),
    ("funding 50/h", edit_csv("funding.csv", lambda df: df.loc.__setitem__((3, "rate"), 50.0)),
     "funding.csv row 4: column 'rate' is 50.0, beyond the sanity bound 0.04 (absolute value)"),
    ("infinite size", edit_lines("trades.csv", lambda t: [*t[:2], set_cell(t[2], 4, "inf"), *t[3:]]),
     "trades.csv row 2: column 'sz' is inf, not finite"),
    ("zero book size", edit_csv("l2.csv", zero_size),
     "l2.csv row 5: column 'ask_sz' is 0.0 but 'ask_px' is set: must be > 0"),
    ("levels out of order", edit_csv("l2.csv", swap_bid_levels), None),  # message built from the data below
    ("crossed book", edit_csv("l2.csv", cross_third_book), None),
    ("columns differing in case", edit_csv("candles.csv", lambda df: df.__setitem__("Close", df["close"])),
     "candles.csv: columns 'close' and 'Close' differ only in case (column names are case-insensitive): keep one"),
    ("header-only candles", edit_lines("candles.csv", lambda t: t[:1]),
     "candles.csv: no data rows (only a header: ts, symbol, open, high, low, close, volume, n, ts_recv)"),
    ("header-only trades", edit_lines("trades.csv", lambda t: t[:1]),
     "trades.csv: no data rows (only a header: ts, symbol, side, px, sz, tid, ts_recv); remove the file if "
     "the stream has no data"),
]


def expected_book_message(case: str, base: Path) -> str:
    df = pd.read_csv(base / "l2.csv")
    if case == "crossed book":
        i = level0_rows(df)[2]
        ask = float(df.loc[i, "ask_px"])
        return (f"l2.csv row {i + 1}: column 'ask_px' is {ask!r}, at or below the best bid {ask + 5!r} "
                "of the same book (crossed)")
    i = level0_rows(df)[1] + 1
    lo, hi = float(df.loc[i, "bid_px"]), float(df.loc[i + 1, "bid_px"])
    return f"l2.csv row {i + 2}: column 'bid_px' is {lo!r} at level 2, not below the level before ({hi!r})"


@pytest.mark.parametrize(("case", "mutate", "message"), CASES, ids=[c[0] for c in CASES])
def test_the_command_rejects_lying_data_in_one_line(tmp_path, base, case, mutate, message):
    d = tmp_path / "data"
    shutil.copytree(base, d)
    mutate(d)
    message = message or expected_book_message(case, base)
    p = hlquant("backtest", "data=files", f"data.path={d}", "strategy.symbols=[BTC]", "progress=false",
                f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert p.returncode == 1, p.stdout[-1000:]
    assert p.stderr.strip().splitlines()[-1] == f"error: {message}", p.stderr[-3000:]
    assert "Traceback" not in p.stderr


def test_the_unchanged_day_runs(tmp_path, base):
    p = hlquant("backtest", "data=files", f"data.path={base}", "strategy.symbols=[BTC]", "progress=false",
                f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]


def test_interval_is_the_dominant_spacing_and_irregular_bars_can_be_accepted(tmp_path, base):
    d = tmp_path / "data"
    shutil.copytree(base, d)
    edit_csv("candles.csv", shift_bar_16)(d)
    raw = pd.read_csv(d / "candles.csv")
    assert infer_interval(raw["ts"].to_numpy(), raw["symbol"].to_numpy()) == 60_000  # not the 1 s step
    with pytest.raises(DataError, match="candles.csv row 17: column 'ts'"):
        load_files(d)
    md = load_files(d, irregular="accept")
    assert md.interval_ms == 60_000 and md.meta["irregular_bars"] == 1
    # every bar is stamped with its close (open + 1 min): no close is seen before it happened
    assert sorted(md.candles["ts_exch"].tolist()) == sorted((raw["ts"] + 60_000).tolist())
    p = hlquant("backtest", "data=files", f"data.path={d}", "data.irregular=accept", "strategy.symbols=[BTC]",
                "progress=false", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "off the 1m grid of BTC" in p.stdout + p.stderr and "kept (irregular=accept)" in p.stdout + p.stderr


def test_parquet_timestamps_in_another_unit_or_range(tmp_path):
    bars = {"symbol": ["BTC", "BTC"], "open": [1.0, 1.0], "high": [1.0, 1.0], "low": [1.0, 1.0],
            "close": [1.0, 1.0], "volume": [1.0, 1.0]}
    d = tmp_path / "us"
    d.mkdir()
    pd.DataFrame({"ts": np.array([T0, T0 + 60_000], dtype=np.int64) * 1000, **bars}).to_parquet(d / "candles.parquet")
    with pytest.raises(DataError) as e:
        load_files(d)
    assert str(e.value) == ("candles.parquet row 1: column 'ts' is 1767571200000000, more than a day in the "
                            "future read as milliseconds: it looks like microseconds since epoch (divide by 1000)")
    d = tmp_path / "old"
    d.mkdir()
    ts = pd.to_datetime(["2014-12-31 23:00", "2014-12-31 23:01"], utc=True)
    pd.DataFrame({"ts": ts, **bars}).to_parquet(d / "candles.parquet")
    with pytest.raises(DataError) as e:
        load_files(d)
    assert str(e.value) == "candles.parquet row 1: column 'ts' is '2014-12-31T23:00:00+00:00', before 2015-01-01"
