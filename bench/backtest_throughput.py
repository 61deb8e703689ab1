"""Backtest throughput: the full hlquant pipeline beside vectorbt, same run, same signals.

    .venv/bin/python bench/backtest_throughput.py [--days 232] [--symbols BTC,ETH,SOL]

Generates >= 1,000,000 one-minute candles (seeded), runs the MA-crossover
strategy through every box of the data flow (features -> FeatureStore ->
agent -> Blackboard -> RiskEngine -> OrderRouter -> SimVenue -> Portfolio ->
AuditLog) and prints events/second beside vectorbt's
``Portfolio.from_signals`` on the same signals (computed with the same
numba feature kernel), cold (first call: compilation / cache load) and warm,
as ratios. Then checks both agree on the PnL of each symbol.

Parity settings: zero latency, zero spread and slippage, no funding, taker
fee 0.045% on both sides. The remaining difference comes from Hyperliquid's
lot sizes (hlquant rounds order sizes to szDecimals; vectorbt trades
fractional sizes). Each order's size differs by at most one lot (10^-szDecimals
coin), so the PnL may differ by at most one lot times the price travelled
between consecutive fills plus the fee on one lot per fill: that bound is the
stated tolerance, computed per symbol from the fills.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))



def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=232)
    ap.add_argument("--symbols", default="BTC,ETH,SOL")
    ap.add_argument("--fast", type=int, default=10)
    ap.add_argument("--slow", type=int, default=50)
    ap.add_argument("--size-usd", type=float, default=10_000.0)
    args = ap.parse_args(argv)

    from hlquant.agents import AgentConfig
    from hlquant.backtest.engine import Backtest
    from hlquant.core.events import MARKET_DTYPES, MarketKind
    from hlquant.data.generate import generate
    from hlquant.risk.engine import RiskConfig
    from hlquant.venues.sim import SimVenueConfig
    from strategies.ma_cross import MACross

    symbols = tuple(args.symbols.split(","))
    t0 = time.perf_counter()
    market = generate(symbols=symbols, days=args.days, seed=11, with_trades=False, with_l2=False)
    market.funding = np.empty(0, dtype=MARKET_DTYPES[MarketKind.FUNDING])  # vectorbt has no funding
    gen_s = time.perf_counter() - t0
    n_events = len(market)
    print(f"data: {n_events:,} events ({len(market.candles):,} candles, {len(symbols)} symbols) "
          f"generated in {gen_s:.1f}s")

    fee = 0.00045
    venue = SimVenueConfig(taker_fee=fee, maker_fee=fee, latency_ms=0, slippage_bps=0.0,
                           half_spread_bps=0.0, initial_cash=1e9, default_leverage=20)
    risk = RiskConfig(max_notional_per_symbol=1e12, max_gross_exposure=1e12, max_leverage=100,
                      max_order_notional=1e12, max_orders_per_s=1e6, order_burst=10**6,
                      max_drawdown=1.0)
    params = {"fast": args.fast, "slow": args.slow, "size_usd": args.size_usd}

    def run_hl():
        agent = MACross(AgentConfig("ma", symbols, params=params))
        bt = Backtest(market, [agent], venue=venue, risk=risk, staleness={"default": 0})
        t = time.perf_counter()
        res = bt.run()
        return res, time.perf_counter() - t

    res_cold, hl_cold = run_hl()
    res, hl_warm = run_hl()
    loop_eps = res.stats["events_per_second"]

    # --- vectorbt on the same signals ------------------------------------
    from hlquant.research.vectorized import closes, ma_cross_portfolio, parity

    close_df = closes(market, symbols)
    t = time.perf_counter()
    pf = ma_cross_portfolio(close_df, args.fast, args.slow, args.size_usd, fee=fee)
    vbt_cold = time.perf_counter() - t
    t = time.perf_counter()
    pf = ma_cross_portfolio(close_df, args.fast, args.slow, args.size_usd, fee=fee)
    vbt_warm = time.perf_counter() - t

    print("\n== throughput (same process) ==")
    print(f"hlquant full pipeline  cold {hl_cold:7.2f}s  warm {hl_warm:7.2f}s  "
          f"({n_events / hl_warm:,.0f} ev/s end-to-end, {loop_eps:,.0f} ev/s event loop)")
    print(f"vectorbt from_signals  cold {vbt_cold:7.2f}s  warm {vbt_warm:7.2f}s  "
          f"({n_events / vbt_warm:,.0f} bars/s)")
    print(f"ratio hlquant/vectorbt time: cold {hl_cold / vbt_cold:.2f}x  warm {hl_warm / vbt_warm:.2f}x")

    # --- parity -------------------------------------------------------------
    print("\n== PnL parity (per symbol, net of fees, marked at the last close) ==")
    table = parity(res.artifacts.fills, pf, close_df, fee)
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    ok = bool(table["ok"].all())
    print(f"\nparity: {'OK' if ok else 'FAILED'} (tolerance: one lot per order, see docstring)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
