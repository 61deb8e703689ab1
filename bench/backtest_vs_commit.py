"""The full backtest pipeline of this checkout against another checkout (a baseline commit).

    git worktree add /tmp/base 7d482b3
    .venv/bin/python bench/backtest_vs_commit.py /tmp/base [--days 60] [--rounds 4] [--repeat 5]

Each run is a fresh process that imports hlquant and the MA crossover from one tree,
generates the same seeded bars (3 symbols, one-minute candles, no funding) and times
``Backtest.run`` ``--repeat`` times (best kept). Rounds alternate baseline and this tree,
so both see the same machine; it prints every run, the median of each side and the
ratio. The data checksum printed by each side must agree (same bars in both).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time, zlib
sys.path.insert(0, sys.argv[1])
import numpy as np
import hlquant
from hlquant.agents import AgentConfig
from hlquant.backtest.engine import Backtest
from hlquant.core.events import MARKET_DTYPES, MarketKind
from hlquant.data.generate import generate
from hlquant.risk.engine import RiskConfig
from hlquant.venues.sim import SimVenueConfig
from strategies.ma_cross import MACross

days, repeat = int(sys.argv[2]), int(sys.argv[3])
symbols = ("BTC", "ETH", "SOL")
market = generate(symbols=symbols, days=days, seed=11, with_trades=False, with_l2=False)
market.funding = np.empty(0, dtype=MARKET_DTYPES[MarketKind.FUNDING])
# bench/backtest_throughput.py's parity settings (zero latency/spread/slippage, limits out of the way)
venue = SimVenueConfig(taker_fee=0.00045, maker_fee=0.00045, latency_ms=0, slippage_bps=0.0,
                       half_spread_bps=0.0, initial_cash=1e9, default_leverage=20)
risk = RiskConfig(max_notional_per_symbol=1e12, max_gross_exposure=1e12, max_leverage=100,
                  max_order_notional=1e12, max_orders_per_s=1e6, order_burst=10**6, max_drawdown=1.0)
best = float("inf")
for _ in range(repeat):
    agent = MACross(AgentConfig("ma", symbols, params={"fast": 10, "slow": 50, "size_usd": 10_000.0}))
    t = time.perf_counter()
    Backtest(market, [agent], venue=venue, risk=risk, staleness={"default": 0}).run()
    best = min(best, time.perf_counter() - t)
print(json.dumps({"tree": hlquant.__file__, "bars": int(len(market.candles)), "s": best,
                  "crc": zlib.crc32(np.ascontiguousarray(market.candles["close"]).tobytes())}))
"""


def run(tree: Path, days: int, repeat: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(tree), str(days), str(repeat)],
                         cwd=tree, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("baseline", type=Path, help="a checkout of the baseline commit")
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=5, help="runs per process (best kept)")
    args = ap.parse_args(argv)
    trees = {"baseline": args.baseline.resolve(), "this": HERE}
    rates: dict[str, list[float]] = {k: [] for k in trees}
    crcs = set()
    for i in range(args.rounds):
        for name, tree in trees.items():
            r = run(tree, args.days, args.repeat)
            if not r["tree"].startswith(str(tree)):
                raise SystemExit(f"{name}: imported {r['tree']}, not from {tree}")
            crcs.add(r["crc"])
            rates[name].append(r["bars"] / r["s"])
            print(f"round {i + 1} {name:8s} {rates[name][-1]:>10,.0f} bars/s ({r['bars']:,} bars, best of "
                  f"{args.repeat}: {r['s']:.2f} s)", flush=True)
    if len(crcs) != 1:
        raise SystemExit("the two trees generated different bars: the comparison means nothing")
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"median bars/s: baseline {med['baseline']:,.0f}, this tree {med['this']:,.0f}; "
          f"ratio this / baseline {med['this'] / med['baseline']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
