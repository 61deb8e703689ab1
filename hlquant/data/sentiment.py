"""A seeded synthetic sentiment series correlated with future returns by a set amount.

Why: a strategy that reads an external series must run offline (tests, notebooks,
the example strategy) on data whose information content is known. This generator
makes a sentiment score whose correlation with the *next* ``horizon_min`` minutes of
each symbol's log return is ``corr`` in expectation:

1. every ``every_min`` minutes, at a bar close ``t`` of the market data, the forward
   log return ``f = log(close[t + horizon] / close[t])`` of each symbol;
2. ``f`` standardized per symbol (mean 0, sd 1 over the sample): ``z``;
3. ``sentiment = corr * z + sqrt(1 - corr**2) * e`` with ``e ~ N(0, 1)`` from
   ``numpy.random.default_rng(seed)``, one draw per row: the score has unit variance
   and ``corr(sentiment, f) = corr`` in expectation (tests/data/test_sentiment.py
   measures it);
4. ``ts`` (the observation time) is ``t``; ``ts_recv = t + lag_ms`` (the source
   publishes late). Rows whose horizon runs past the data are dropped.

The series knows the future by construction, so it exists for backtests only; a
backtest applies each row at ``ts_recv``, so the part of the horizon between ``ts``
and ``ts_recv`` is lost to the strategy, as it would be live. Same arguments ->
identical series. ``python -m hlquant.data.sentiment --out sentiment.csv`` writes one
for the bundled sample in the signal file format (``hlquant.data.series``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hlquant.core.events import MarketKind
from hlquant.data.market import MarketData
from hlquant.data.series import SignalSeries


def synthetic_sentiment(market: MarketData, corr: float = 0.3, horizon_min: int = 30,
                        every_min: int = 5, lag_ms: int = 30_000, seed: int = 0,
                        name: str = "sentiment", symbols: Sequence[str] | None = None) -> pd.DataFrame:
    """The series as a wide frame ``ts, ts_recv, symbol, <name>`` (module docstring)."""
    if not -1.0 <= corr <= 1.0:
        raise ValueError(f"corr must be in [-1, 1], got {corr}")
    if horizon_min < 1 or every_min < 1:
        raise ValueError("horizon_min and every_min must be >= 1")
    if lag_ms < 0:
        raise ValueError(f"lag_ms must be >= 0, got {lag_ms}")
    c = market.arrays()[MarketKind.CANDLE]
    step = market.interval_ms
    rng = np.random.default_rng(seed)
    frames = []
    for s in (symbols or market.symbols):
        rows = c[c["sym"] == market.sym_id(s)]
        rows = rows[np.argsort(rows["ts_exch"], kind="stable")]
        ts, close = rows["ts_exch"], rows["close"]
        t_obs = ts[(ts - ts[0]) % (every_min * step) == 0] if len(ts) else ts
        j = np.searchsorted(ts, t_obs + horizon_min * step)
        ok = j < len(ts)
        ok[ok] &= ts[j[ok]] == t_obs[ok] + horizon_min * step
        i0 = np.searchsorted(ts, t_obs[ok])
        fwd = np.log(close[j[ok]] / close[i0])
        sd = fwd.std()
        z = (fwd - fwd.mean()) / sd if sd > 0 else np.zeros_like(fwd)
        score = corr * z + np.sqrt(1.0 - corr * corr) * rng.standard_normal(len(z))
        frames.append(pd.DataFrame({"ts": t_obs[ok], "ts_recv": t_obs[ok] + int(lag_ms), "symbol": s,
                                    name: score, "fwd_return": fwd}))
    f = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["ts", "ts_recv", "symbol", name, "fwd_return"])
    return f.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)


def synthetic_sentiment_series(market: MarketData, corr: float = 0.3, horizon_min: int = 30,
                               every_min: int = 5, lag_ms: int = 30_000, seed: int = 0,
                               name: str = "sentiment") -> SignalSeries:
    """The same series as the backtest consumes it (``SignalSeries``)."""
    f = synthetic_sentiment(market, corr, horizon_min, every_min, lag_ms, seed, name)
    return SignalSeries.from_frame(pd.DataFrame({"ts_exch": f["ts"], "ts_recv": f["ts_recv"],
                                                 "symbol": f["symbol"], "name": name, "value": f[name]}))


def main(argv: Sequence[str] | None = None) -> None:
    from hlquant.data.loaders import load_sample
    from hlquant.data.series import write_signal_file

    ap = argparse.ArgumentParser(description="Write a synthetic sentiment file for the bundled sample.")
    ap.add_argument("--out", required=True, help="CSV or Parquet path")
    ap.add_argument("--corr", type=float, default=0.3)
    ap.add_argument("--horizon-min", type=int, default=30)
    ap.add_argument("--every-min", type=int, default=5)
    ap.add_argument("--lag-ms", type=int, default=30_000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    f = synthetic_sentiment(load_sample(), a.corr, a.horizon_min, a.every_min, a.lag_ms, a.seed)
    p = write_signal_file(f.drop(columns=["fwd_return"]), a.out)
    print(f"wrote {len(f):,} rows to {p}; measured corr with the forward return "
          f"{np.corrcoef(f['sentiment'], f['fwd_return'])[0, 1]:.3f}")


if __name__ == "__main__":
    main()
