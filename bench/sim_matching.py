"""Simulated matching: prints processed with many resting orders, and taker orders walking L2.

    .venv/bin/python bench/sim_matching.py [--resting 2000] [--prints 200000]

1. A passive book: ``--resting`` limit orders (half bids below, half asks above
   the market) and ``--prints`` trades around the mid that cross none of them
   plus 1% that cross the best level. SimVenue stops at the first level a print
   does not trade through; the baseline, in the same process, is the naive scan
   of every resting order on every print.
2. Taker IOC orders walking a 10-level L2 book: orders per second.
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
    ap.add_argument("--resting", type=int, default=2000)
    ap.add_argument("--prints", type=int, default=200_000)
    ap.add_argument("--orders", type=int, default=50_000)
    args = ap.parse_args(argv)

    from hlquant.core.assets import DEFAULT_ASSETS
    from hlquant.core.clock import SimClock
    from hlquant.core.events import OrderRequest, Side, Tif
    from hlquant.venues.sim import SimVenue, SimVenueConfig

    t0 = 1_767_225_600_000
    cfg = SimVenueConfig(initial_cash=1e12, default_leverage=40)
    v = SimVenue({"BTC": DEFAULT_ASSETS["BTC"]}, cfg, clock=SimClock(t0))
    v.on_trade("BTC", t0, 1, 100_000.0, 1.0)
    half = args.resting // 2
    reqs = [OrderRequest(t0, t0, f"0x{i:032x}", "i", "a", "BTC", Side.BUY if i < half else Side.SELL, 0.001,
                         float(99_000 - i) if i < half else float(101_000 + i), Tif.GTC)
            for i in range(args.resting)]
    v.submit(reqs)
    rng = np.random.default_rng(1)
    pxs = 100_000.0 + rng.normal(0, 50, args.prints)
    cross = rng.random(args.prints) < 0.01
    pxs[cross] = 98_999.0 + rng.random(cross.sum())  # through the best bid only
    rest = list(v._resting["BTC"])

    t = time.perf_counter()
    for i, px in enumerate(pxs):
        v.on_trade("BTC", t0 + i, -1, float(px), 1e-9)  # tiny prints: a touch, not a sweep
    ours = time.perf_counter() - t
    n_naive = min(args.prints, 20_000)
    pxs_n = pxs[:n_naive]
    t = time.perf_counter()
    for px in pxs_n:
        for o in rest:
            lim = o.req.px
            _ = (px < lim) if o.sign > 0 else (px > lim)
    naive_s = (time.perf_counter() - t) * args.prints / n_naive
    print(f"== {args.prints:,} prints against {args.resting:,} resting orders ==")
    print(f"SimVenue.on_trade   {args.prints / ours:12,.0f} prints/s")
    print(f"naive full scan     {args.prints / naive_s:12,.0f} prints/s (extrapolated from {n_naive:,})")
    print(f"ratio {naive_s / ours:.0f}x")

    v2 = SimVenue({"BTC": DEFAULT_ASSETS["BTC"]}, cfg, clock=SimClock(t0))
    bp = 100_000.0 - np.arange(1, 11, dtype=float)
    ap_ = 100_000.0 + np.arange(1, 11, dtype=float)
    sz = np.full(10, 1e6)
    v2.on_book("BTC", t0, bp, sz, ap_, sz)
    orders = [OrderRequest(t0, t0, f"0x{i + 10**6:032x}", "i", "a", "BTC", Side.BUY if i % 2 else Side.SELL,
                           0.001, 100_010.0 if i % 2 else 99_990.0, Tif.IOC) for i in range(args.orders)]
    t = time.perf_counter()
    for i in range(0, len(orders), 40):
        v2.submit(orders[i:i + 40])
    taker = time.perf_counter() - t
    print(f"\n== {args.orders:,} taker IOC orders against a 10-level book ==")
    print(f"{args.orders / taker:,.0f} orders/s ({taker / args.orders * 1e6:.1f} us/order incl. validation, "
          "margin check, fill, fee)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
