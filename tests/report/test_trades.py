"""Round trips rebuilt from fills: entries, exits, flips, fees split, funding attributed, exit
reasons, statistics, breakdowns; and on real runs they add up to the run's PnL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hlquant.agents import Agent, AgentConfig
from hlquant.backtest.engine import Backtest
from hlquant.data.loaders import load_sample
from hlquant.report.metrics import FILL_COLUMNS, FUNDING_COLUMNS, trades
from hlquant.report.trades import ExitReason, breakdown, round_trips, trade_stats

T0 = pd.Timestamp("2026-01-05 00:00", tz="UTC")


def t(minutes: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=minutes)


def fills() -> pd.DataFrame:
    rows = [  # ts, symbol, agent, side, px, sz, fee, closed_pnl, liquidity, cloid
        (t(1), "BTC", "a", 1, 100.0, 1.0, 0.1, 0.0, "taker", "c1"),
        (t(2), "BTC", "a", 1, 110.0, 1.0, 0.1, 0.0, "taker", "c2"),     # adds: average 105
        (t(3), "BTC", "a", -1, 120.0, 0.5, 0.05, 7.5, "taker", "c3"),   # reduces
        (t(4), "BTC", "a", -1, 100.0, 3.5, 0.35, -7.5, "taker", "c4"),  # closes 1.5, flips short 2
        (t(6), "BTC", "a", 1, 90.0, 2.0, 0.2, 20.0, "taker", "sl1"),    # a stop closes the short
        (t(7), "BTC", "a", 1, 95.0, 1.0, 0.0, 0.0, "maker", "c7"),
        (t(8), "BTC", "risk", -1, 96.0, 1.0, 0.0, 1.0, "taker", "r1"),  # the risk engine's order
        (t(2), "ETH", "b", -1, 10.0, 1.0, 0.01, 0.0, "taker", "c9"),
        (t(5), "ETH", "", 1, 12.0, 1.0, 0.012, -2.0, "liquidation", ""),
        (t(9), "SOL", "a", 1, 5.0, 1.0, 0.0, 0.0, "taker", "c10"),     # still open at the end
    ]
    return pd.DataFrame(rows, columns=FILL_COLUMNS)


def orders() -> pd.DataFrame:
    return pd.DataFrame([("c4", "i4", "a", "", "cross -1"), ("sl1", "i5", "a", "sl", "protect"),
                         ("r1", "risk:BTC:1", "risk", "", "re-net")],
                        columns=["cloid", "intent_id", "agent", "tpsl", "reason"])


def funding() -> pd.DataFrame:
    return pd.DataFrame([(t(5), "BTC", 0.3, 0.0001, -2.0), (t(5), "ETH", -0.05, 0.0001, -1.0),
                         (t(10), "SOL", 0.0, 0.0001, 0.0)], columns=FUNDING_COLUMNS)


def test_round_trips_from_fills():
    prices = pd.DataFrame({"SOL": [5.0, 6.0]}, index=[t(9), t(10)])
    df = round_trips(fills(), funding(), orders(), prices, end=t(10))
    got = df[["symbol", "agent", "direction", "entry_px", "exit_px", "size", "pnl", "fees", "funding",
              "exit_reason"]].to_dict("records")
    want = [
        ("BTC", "a", "long", 105.0, 105.0, 2.0, 0.0, 0.4, 0.0, "signal"),
        ("ETH", "b", "short", 10.0, 12.0, 1.0, -2.0, 0.022, -0.05, "liquidation"),
        ("BTC", "a", "short", 100.0, 90.0, 2.0, 20.0, 0.4, 0.3, "stop"),
        ("BTC", "a", "long", 95.0, 96.0, 1.0, 1.0, 0.0, 0.0, "risk"),
        ("SOL", "a", "long", 5.0, 6.0, 1.0, 1.0, 0.0, 0.0, "open"),
    ]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert tuple(g.values())[:3] == w[:3] and g["exit_reason"] == w[9]
        np.testing.assert_allclose([g[k] for k in ("entry_px", "exit_px", "size", "pnl", "fees", "funding")],
                                   w[3:9], atol=1e-12)
    np.testing.assert_allclose(df["net_pnl"], df["pnl"] - df["fees"] + df["funding"])
    assert df.loc[0, "exit_note"] == "cross -1" and df.loc[2, "exit_note"] == "protect"
    assert df.loc[0, "duration_min"] == 3.0 and df.loc[1, "entry_time"] == t(2)
    # the flip's fee is split by size: 1.5 of 3.5 closes the long, 2 of 3.5 opens the short
    assert df.loc[2, "fees"] == pytest.approx(0.35 * 2 / 3.5 + 0.2)


def test_statistics_over_closed_trips():
    df = round_trips(fills(), funding(), orders(), None, end=t(10))
    s = trade_stats(df)
    net = [-0.4, -2.072, 19.9, 1.0]   # in entry order; the open SOL trip is left out
    assert s["n_trades"] == 4
    assert s["win_rate"] == pytest.approx(0.5)
    assert s["profit_factor"] == pytest.approx((19.9 + 1.0) / (0.4 + 2.072))
    assert s["expectancy"] == pytest.approx(np.mean(net))
    assert s["avg_win"] == pytest.approx(10.45) and s["avg_loss"] == pytest.approx(-1.236)
    assert s["max_consecutive_losses"] == 2
    by_symbol = breakdown(df, "symbol").set_index("symbol")
    assert by_symbol.loc["BTC", "trades"] == 3 and by_symbol.loc["ETH", "net_pnl"] == pytest.approx(-2.072)
    by_agent = breakdown(df, "agent").set_index("agent")
    assert set(by_agent.index) == {"a", "b"}
    assert trade_stats(df.iloc[:0])["n_trades"] == 0


def test_round_trips_add_up_to_the_runs_pnl(sample_run):
    res, out = sample_run
    m, art = res.metrics, res.artifacts
    df = trades(art)
    assert len(df) > 50 and set(df["exit_reason"]) <= {"signal", "open"}
    assert df["net_pnl"].sum() == pytest.approx(m["net_pnl"], abs=1e-6)
    assert df["pnl"].sum() == pytest.approx(m["trading_pnl"], abs=1e-6)
    assert df["fees"].sum() == pytest.approx(m["fees"], abs=1e-9)
    assert df["funding"].sum() == pytest.approx(m["funding"], abs=1e-9)
    closed = df[df["exit_reason"] != "open"]
    assert m["n_trades"] == len(closed)
    assert m["hit_rate"] == pytest.approx((closed["net_pnl"] > 0).mean())
    back = pd.read_parquet(out / "trades.parquet")
    pd.testing.assert_frame_equal(back.reset_index(drop=True), df.reset_index(drop=True), check_dtype=False)


class StopTrader(Agent):
    """Buys, then protects the position with a stop just under the price; again when flat."""

    def decide(self, ctx):
        if ctx.open_orders():
            return None
        pos = ctx.position()
        if pos == 0:
            return ctx.order("buy", 0.02, reason="enter")
        return ctx.order("sell", abs(pos), trigger_px=ctx.price() * 0.999, tpsl="sl", reduce_only=True,
                         reason="protect")


def test_stops_are_told_apart_from_signals():
    md = load_sample()
    md = md.select(symbols=["BTC"], end=md.span()[0] + 12 * 3_600_000)
    res = Backtest(md, [StopTrader(AgentConfig("st", ("BTC",)))]).run()
    df = trades(res.artifacts)
    reasons = df["exit_reason"].value_counts().to_dict()
    assert reasons.get(str(ExitReason.STOP), 0) >= 10, reasons
    assert set(reasons) <= {"stop", "open"}
    assert (df.loc[df["exit_reason"] == "stop", "exit_note"] == "protect").all()
