"""Feature kernels: whole-array and incremental throughput beside pandas / naive numpy.

    .venv/bin/python bench/feature_throughput.py [--n 1000000] [--window 60]

Whole-array (backtests, research): the numba ``*_run`` kernels vs pandas'
``ewm`` / ``rolling`` on the same 1,000,000 prices, with a check that they agree.
Incremental (live, one event at a time): ``Feature.update`` (O(1) Welford with
removal) vs the naive approach of recomputing the window with numpy on every
tick. Ratios printed; numbers depend on the machine, the ratios less so.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--window", type=int, default=60)
    ap.add_argument("--ticks", type=int, default=100_000)
    args = ap.parse_args(argv)

    from hlquant.features import build_feature

    rng = np.random.default_rng(0)
    x = 100_000 * np.exp(np.cumsum(rng.normal(0, 1e-3, args.n)))
    w = args.window
    ema = build_feature({"name": "e", "kind": "ema", "input": "candle.close", "params": {"span": w}})
    z = build_feature({"name": "z", "kind": "zscore", "input": "candle.close", "params": {"window": w}})
    ema.run(x[:100])  # compile / load the cache outside the timing
    z.run(x[:100])

    s = pd.Series(x)
    t_ema = timed(lambda: ema.run(x))
    t_ema_pd = timed(lambda: s.ewm(span=w, adjust=False).mean().to_numpy())
    t_z = timed(lambda: z.run(x))
    t_z_pd = timed(lambda: ((s - s.rolling(w).mean()) / s.rolling(w).std(ddof=1)).to_numpy())
    ref_z = ((s - s.rolling(w).mean()) / s.rolling(w).std(ddof=1)).to_numpy()
    ok_e = np.allclose(ema.run(x), s.ewm(span=w, adjust=False).mean().to_numpy(), rtol=1e-12)
    zz = z.run(x)
    m = ~np.isnan(ref_z) & ~np.isnan(zz)
    ok_z = np.allclose(zz[m], ref_z[m], rtol=1e-6, atol=1e-6)
    print(f"== whole array, {args.n:,} prices ==")
    print(f"EMA({w})      numba {args.n / t_ema:14,.0f}/s   pandas ewm {args.n / t_ema_pd:14,.0f}/s   "
          f"ratio {t_ema_pd / t_ema:5.1f}x   agree: {ok_e}")
    print(f"zscore({w})   numba {args.n / t_z:14,.0f}/s   pandas rolling {args.n / t_z_pd:10,.0f}/s   "
          f"ratio {t_z_pd / t_z:5.1f}x   agree: {ok_z}")

    n = args.ticks
    ticks = x[:n]
    zi = build_feature({"name": "z", "kind": "zscore", "input": "candle.close", "params": {"window": w}})

    def incremental():
        zi.reset()
        for v in ticks:
            zi.update(v)

    def naive():
        buf: list[float] = []
        for v in ticks:
            buf.append(v)
            if len(buf) > w:
                del buf[0]
            a = np.asarray(buf)
            (v - a.mean()) / (a.std(ddof=1) if len(a) > 1 else 1.0)

    t_inc = timed(incremental, 1)
    t_naive = timed(naive, 1)
    print(f"\n== incremental (one tick at a time), {n:,} ticks, window {w} ==")
    print(f"Feature.update (O(1))      {n / t_inc:12,.0f} ticks/s ({t_inc / n * 1e6:.2f} us/tick)")
    print(f"naive numpy over window    {n / t_naive:12,.0f} ticks/s ({t_naive / n * 1e6:.2f} us/tick)")
    print(f"ratio {t_naive / t_inc:.1f}x")
    return 0 if ok_e and ok_z else 1


if __name__ == "__main__":
    raise SystemExit(main())
