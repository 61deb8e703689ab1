"""Seeded synthetic market data with the stylized facts of crypto perps.

Why synthetic: the bundled sample must be redistributable, small and exactly
reproducible (a test regenerates it and compares fingerprints), and the
throughput benchmark needs millions of candles on demand.

Model (all randomness from ``numpy.random.SeedSequence(seed)``, one child
stream per component, so switching trades/L2 off leaves candles unchanged):

1. **Returns.** 1-minute log returns ``r[t, s] = sigma[t, s] * z[t, s]`` with
   GARCH(1,1) variance ``sigma2[t+1] = omega + alpha * r[t]^2 + beta * sigma2[t]``
   (``alpha = 0.06``, ``beta = 0.92``, ``omega`` set so the unconditional
   variance matches the symbol's annual volatility: BTC 50 %, ETH 65 %,
   SOL 85 %, others 90 %). Innovations are multivariate Student-t with
   ``df = 5`` (Gaussian draws correlated by a Cholesky factor -- BTC/ETH 0.80,
   BTC/SOL 0.70, ETH/SOL 0.72, other pairs 0.60 -- divided by one shared
   ``sqrt(chi2(df)/df)`` per minute), scaled to unit variance. This gives
   volatility clustering, fat tails and joint crashes.
2. **Candles.** Start prices BTC 90 000, ETH 3 000, SOL 150 (others 50).
   Close = exp(cumulated log return); open = previous close. High/low are
   drawn from the exact distribution of the maximum/minimum of a Brownian
   bridge from 0 to ``r`` with variance ``sigma^2`` over the minute:
   ``hi = (r + sqrt(r^2 - 2 sigma^2 ln U)) / 2``. Every price is rounded to a
   valid Hyperliquid price (5 significant figures, ``6 - szDecimals`` decimals;
   ``AssetSpec.round_price``), and high/low are widened to contain open/close.
3. **Activity.** Trades per minute ~ Poisson(``trades_per_min * sigma/sigma_bar``)
   (busier when volatile). Sizes are lognormal in notional (median BTC $8k,
   ETH $4k, SOL $2k, log-sd 1.2) converted to coin and rounded to the lot
   size (at least one lot). Candle ``volume`` = sum of these sizes and ``n`` =
   their count -- also when ``with_trades=False``, so candles do not depend
   on the flag.
4. **Trades** (``with_trades``). Times uniform in the minute (ms, sorted);
   price = the Brownian bridge at that time, clipped to the bar's [low, high]
   and rounded to a valid price; aggressor side leans towards the local
   move; ``tid`` increases with time.
5. **L2** (``with_l2``). Every ``l2_every_min`` minutes at the bar close,
   ``L2_DEPTH`` levels a side around the close: spread = max(1 tick,
   0.2 bp) scaled by relative volatility and lognormal noise; level gaps of
   1 + Poisson ticks; sizes grow with depth (notional BTC $150k, ETH $60k,
   SOL $20k at the top, +35 % per level, lognormal noise), lot-rounded.
6. **Funding**, hourly on the hour: premium index AR(1) (``phi = 0.95``,
   mean 2e-5, innovation sd 1.5e-4), Hyperliquid's formula
   ``rate = (P + clamp(I - P, -0.0005, 0.0005)) / 8`` with interest
   ``I = 0.01 %`` per 8 h, clamped at 4 %/h; ``oracle_px = close / (1 + P)``.
7. ``ts_recv = ts_exch + U{20..80}`` ms (receive latency), per event.

Vectorized numpy plus one numba kernel for the GARCH recursion: 1M candles
take about a second. ``python -m hlquant.data.generate --out hlquant/data/sample``
writes the bundled sample (BTC, ETH, SOL, 7 days, defaults).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numba import njit

from hlquant.core.assets import DEFAULT_ASSETS, AssetSpec, generated_asset, generated_symbols
from hlquant.core.events import L2_DEPTH, MARKET_DTYPES, MarketKind, Side
from hlquant.data.market import MarketData, to_ms

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
MINUTES_PER_YEAR = 365 * 1440


@dataclass(frozen=True, slots=True)
class SymbolProfile:
    """Per-symbol parameters of the generator.

    - price: start price.
    - annual_vol: unconditional annualized volatility of log returns.
    - trade_notional: median trade notional in USD.
    - depth_notional: median notional of the top L2 level in USD.
    """

    price: float
    annual_vol: float
    trade_notional: float
    depth_notional: float


PROFILES: dict[str, SymbolProfile] = {
    "BTC": SymbolProfile(90_000.0, 0.50, 8_000.0, 150_000.0),
    "ETH": SymbolProfile(3_000.0, 0.65, 4_000.0, 60_000.0),
    "SOL": SymbolProfile(150.0, 0.85, 2_000.0, 20_000.0),
}
DEFAULT_PROFILE = SymbolProfile(50.0, 0.90, 1_000.0, 10_000.0)
CORRELATION: dict[frozenset[str], float] = {
    frozenset({"BTC", "ETH"}): 0.80,
    frozenset({"BTC", "SOL"}): 0.70,
    frozenset({"ETH", "SOL"}): 0.72,
}
DEFAULT_CORRELATION = 0.60

GARCH_ALPHA = 0.06
GARCH_BETA = 0.92
T_DF = 5.0
SIZE_LOG_SD = 1.2
SPREAD_BPS = 0.2
FUNDING_PHI = 0.95
FUNDING_MEAN = 2e-5
FUNDING_SD = 1.5e-4
INTEREST_8H = 1e-4
FUNDING_CAP_1H = 0.04
LATENCY_MS = (20, 80)
TID_BASE = 1_000_000_000


# ----------------------------------------------------------------------------- helpers
def price_decimals(px: np.ndarray, px_decimals: int) -> np.ndarray:
    """Decimals allowed at each price: min(5 significant figures, px_decimals), >= 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.floor(np.log10(np.where(px > 0, px, 1.0)))
    return np.clip(4 - mag, 0, px_decimals).astype(np.int64)


def round_prices(px: np.ndarray, px_decimals: int) -> np.ndarray:
    """Vectorized ``AssetSpec.round_price``: nearest valid Hyperliquid price."""
    px = np.asarray(px, dtype=np.float64)
    inv = 10.0 ** price_decimals(px, px_decimals)
    return np.round(px * inv) / inv


def asset_for(symbol: str, index: int, assets: Mapping[str, AssetSpec]) -> AssetSpec:
    """The symbol's AssetSpec; generated symbols (GEN000...) have theirs
    (``hlquant.core.assets.generated_asset``), other unknown symbols get 2 size decimals
    (4 price decimals)."""
    return assets.get(symbol) or generated_asset(symbol) or AssetSpec(symbol, 1000 + index, 2, 10)


def correlation_matrix(symbols: Sequence[str]) -> np.ndarray:
    n = len(symbols)
    c = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            rho = CORRELATION.get(frozenset({symbols[i], symbols[j]}), DEFAULT_CORRELATION)
            c[i, j] = c[j, i] = rho
    return c


@njit(cache=True)
def _garch(z: np.ndarray, omega: np.ndarray, alpha: float, beta: float, var0: np.ndarray):
    """GARCH(1,1) recursion: returns (r, sigma), both shaped like z (minutes, symbols)."""
    m_n, s_n = z.shape
    r = np.empty((m_n, s_n))
    sig = np.empty((m_n, s_n))
    for s in range(s_n):
        v = var0[s]
        for m in range(m_n):
            sd = np.sqrt(v)
            e = sd * z[m, s]
            sig[m, s] = sd
            r[m, s] = e
            v = omega[s] + alpha * e * e + beta * v
    return r, sig


def _latency(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(LATENCY_MS[0], LATENCY_MS[1] + 1, n, dtype=np.int64)


def _lots(rng: np.random.Generator, notional: np.ndarray, px: np.ndarray, sd: float, q: float):
    """Lognormal coin sizes of median ``notional/px`` in integer lots (>= 1)."""
    z = rng.standard_normal(len(px))
    return np.maximum(1.0, np.rint(notional / px * np.exp(sd * z) * q))


# ----------------------------------------------------------------------------- main
def generate(
    symbols: Sequence[str] = ("BTC", "ETH", "SOL"),
    days: float = 7,
    seed: int = 7,
    start: str | int = "2026-01-05",
    l2_every_min: int = 5,
    trades_per_min: float = 6.0,
    with_trades: bool = True,
    with_l2: bool = True,
    with_funding: bool = True,
    assets: Mapping[str, AssetSpec] | None = None,
    n_symbols: int | None = None,
) -> MarketData:
    """Generate 1-minute candles (+ trades, L2, funding) for ``symbols``.

    Same arguments -> bit-identical ``MarketData`` (see ``fingerprint()``).
    ``start`` is a UTC date/time or ms; ``days`` may be fractional. ``n_symbols``: a
    universe of that many generated symbols (GEN000, GEN001, ...; each with the default
    profile, pairwise correlation 0.60, and its own asset rules) instead of ``symbols``.
    """
    if n_symbols is not None:
        symbols = generated_symbols(int(n_symbols))
    symbols = [str(s) for s in symbols]
    if not symbols:
        raise ValueError("generate() needs at least one symbol")
    assets = DEFAULT_ASSETS if assets is None else assets
    t0 = to_ms(start)
    assert t0 is not None
    n_min = int(round(days * 1440))
    if n_min < 1:
        raise ValueError(f"days={days} gives no full minute")
    S = len(symbols)
    specs = [asset_for(s, i, assets) for i, s in enumerate(symbols)]
    prof = [PROFILES.get(s, DEFAULT_PROFILE) for s in symbols]
    ss = np.random.SeedSequence(seed)
    rng_ret, rng_bar, rng_act, rng_trd, rng_l2, rng_fund = (
        np.random.default_rng(c) for c in ss.spawn(6)
    )

    # 1. returns: correlated multivariate Student-t innovations through GARCH(1,1)
    var_u = np.array([p.annual_vol**2 / MINUTES_PER_YEAR for p in prof])
    omega = var_u * (1.0 - GARCH_ALPHA - GARCH_BETA)
    chol = np.linalg.cholesky(correlation_matrix(symbols))
    g = rng_ret.standard_normal((n_min, S)) @ chol.T
    w = rng_ret.chisquare(T_DF, n_min) / T_DF
    z = g * (np.sqrt((T_DF - 2.0) / T_DF) / np.sqrt(w))[:, None]
    r, sig = _garch(np.ascontiguousarray(z), omega, GARCH_ALPHA, GARCH_BETA, var_u)
    del g, z

    # 2. candles (minute-major, symbol-minor: already sorted by (ts, sym))
    p0 = np.array([p.price for p in prof])
    log_open = np.log(p0)[None, :] + np.vstack([np.zeros((1, S)), np.cumsum(r, axis=0)[:-1]])
    log_close = log_open + r
    u = rng_bar.random((2, n_min, S))
    var = sig * sig
    hi_x = 0.5 * (r + np.sqrt(r * r - 2.0 * var * np.log1p(-u[0])))
    lo_x = 0.5 * (r - np.sqrt(r * r - 2.0 * var * np.log1p(-u[1])))
    del u
    close = np.empty((n_min, S))
    high = np.empty((n_min, S))
    low = np.empty((n_min, S))
    open_ = np.empty((n_min, S))
    for j, spec in enumerate(specs):
        pxd = spec.px_decimals
        close[:, j] = round_prices(np.exp(log_close[:, j]), pxd)
        open_[0, j] = round_prices(np.array([p0[j]]), pxd)[0]
        open_[1:, j] = close[:-1, j]
        high[:, j] = round_prices(np.exp(log_open[:, j] + hi_x[:, j]), pxd)
        low[:, j] = round_prices(np.exp(log_open[:, j] + lo_x[:, j]), pxd)
    np.maximum(high, np.maximum(open_, close), out=high)
    np.minimum(low, np.minimum(open_, close), out=low)

    # 3. activity: trade counts and lot sizes (shared by candle volume and trades)
    lam = trades_per_min * sig / np.sqrt(var_u)[None, :]
    count = rng_act.poisson(lam).astype(np.int64)  # (n_min, S)
    flat_count = count.ravel()
    group = np.repeat(np.arange(n_min * S, dtype=np.int64), flat_count)
    t_sym = (group % S).astype(np.int64)
    q = np.array([10.0**sp.sz_decimals for sp in specs])
    notional = np.array([p.trade_notional for p in prof])
    lots = _lots(rng_act, notional[t_sym], close.ravel()[group], SIZE_LOG_SD, q[t_sym])
    vol_lots = np.bincount(group, weights=lots, minlength=n_min * S).reshape(n_min, S)
    volume = vol_lots / q[None, :]

    ts_close = t0 + (np.arange(n_min, dtype=np.int64) + 1) * MINUTE_MS
    candles = np.zeros(n_min * S, dtype=MARKET_DTYPES[MarketKind.CANDLE])
    candles["ts_exch"] = np.repeat(ts_close, S)
    candles["ts_recv"] = candles["ts_exch"] + _latency(rng_bar, n_min * S)
    candles["sym"] = np.tile(np.arange(S, dtype=np.int16), n_min)
    candles["open"] = open_.ravel()
    candles["high"] = high.ravel()
    candles["low"] = low.ravel()
    candles["close"] = close.ravel()
    candles["volume"] = volume.ravel()
    candles["n"] = flat_count

    # 4. trades along the Brownian bridge of each minute
    trades = None
    if with_trades:
        n_tr = len(group)
        off = rng_trd.integers(1, MINUTE_MS, n_tr, dtype=np.int64)
        order = np.lexsort((off, group))
        off = off[order]  # group is sorted, so only offsets move inside a group
        lots = lots[order]
        f = off / MINUTE_MS
        rf, sg = r.ravel()[group], sig.ravel()[group]
        noise = rng_trd.standard_normal((2, n_tr))
        dev = sg * np.sqrt(f * (1.0 - f)) * noise[0]
        x = np.clip(rf * f + dev, lo_x.ravel()[group], hi_x.ravel()[group])
        px = np.empty(n_tr)
        for j, spec in enumerate(specs):
            m = t_sym == j
            px[m] = round_prices(np.exp(log_open.ravel()[group[m]] + x[m]), spec.px_decimals)
        px = np.clip(px, low.ravel()[group], high.ravel()[group])
        side = np.where(dev + 0.5 * sg * noise[1] > 0, int(Side.BUY), int(Side.SELL))
        trades = np.zeros(n_tr, dtype=MARKET_DTYPES[MarketKind.TRADE])
        trades["ts_exch"] = t0 + (group // S) * MINUTE_MS + off
        trades["ts_recv"] = trades["ts_exch"] + _latency(rng_trd, n_tr)
        trades["sym"] = t_sym
        trades["side"] = side
        trades["px"] = px
        trades["sz"] = lots / q[t_sym]
        trades = trades[np.lexsort((trades["sym"], trades["ts_exch"]))]
        trades["tid"] = TID_BASE + np.arange(n_tr, dtype=np.int64)

    # 5. L2 snapshots at bar closes
    l2 = None
    if with_l2 and l2_every_min > 0:
        mins = np.arange(l2_every_min - 1, n_min, l2_every_min)
        k = len(mins) * S
        mid = close[mins].ravel()
        rel_vol = (sig[mins] / np.sqrt(var_u)[None, :]).ravel()
        sym_k = np.tile(np.arange(S), len(mins))
        # one tick per snapshot, the one valid 1 % above the mid: multiples of it are
        # valid prices on every level of the snapshot (ticks only coarsen upwards)
        inv = np.empty(k)
        for j, sp in enumerate(specs):
            m = sym_k == j
            inv[m] = 10.0 ** price_decimals(mid[m] * 1.01, sp.px_decimals)
        mid_u = mid * inv
        base_ticks = np.maximum(1.0, SPREAD_BPS * 1e-4 * mid_u)
        spread = np.maximum(
            1.0, np.rint(base_ticks * rel_vol * np.exp(0.4 * rng_l2.standard_normal(k)))
        )
        bid0 = np.floor(mid_u - spread / 2.0 + 0.5)
        ask0 = bid0 + spread
        gaps = 1.0 + rng_l2.poisson(0.5 * base_ticks[:, None], (2, k, L2_DEPTH - 1))
        zero = np.zeros((k, 1))
        bid_u = bid0[:, None] - np.hstack([zero, np.cumsum(gaps[0], axis=1)])
        ask_u = ask0[:, None] + np.hstack([zero, np.cumsum(gaps[1], axis=1)])
        depth = np.array([p.depth_notional for p in prof])[sym_k][:, None]
        grow = 1.0 + 0.35 * np.arange(L2_DEPTH)[None, :]
        qk = q[sym_k][:, None]
        ln = 0.6 * rng_l2.standard_normal((2, k, L2_DEPTH))
        bid_px = bid_u / inv[:, None]
        ask_px = ask_u / inv[:, None]
        l2 = np.zeros(k, dtype=MARKET_DTYPES[MarketKind.L2])
        l2["ts_exch"] = np.repeat(ts_close[mins], S)
        l2["ts_recv"] = l2["ts_exch"] + _latency(rng_l2, k)
        l2["sym"] = sym_k
        l2["bid_px"] = bid_px
        l2["ask_px"] = ask_px
        l2["bid_sz"] = np.maximum(1.0, np.rint(depth * grow / bid_px * np.exp(ln[0]) * qk)) / qk
        l2["ask_sz"] = np.maximum(1.0, np.rint(depth * grow / ask_px * np.exp(ln[1]) * qk)) / qk

    # 6. hourly funding on the hour
    funding = None
    hours = np.arange(1, n_min // 60 + 1)
    if with_funding and len(hours):
        eps = rng_fund.standard_normal((len(hours), S)) * FUNDING_SD
        prem = np.empty((len(hours), S))
        p = np.full(S, FUNDING_MEAN)
        for h in range(len(hours)):  # a few thousand steps at most
            p = FUNDING_MEAN + FUNDING_PHI * (p - FUNDING_MEAN) + eps[h]
            prem[h] = p
        rate = (prem + np.clip(INTEREST_8H - prem, -0.0005, 0.0005)) / 8.0
        rate = np.clip(rate, -FUNDING_CAP_1H, FUNDING_CAP_1H)
        spot = close[hours * 60 - 1] / (1.0 + prem)
        for j, sp in enumerate(specs):
            spot[:, j] = round_prices(spot[:, j], sp.px_decimals)
        nf = len(hours) * S
        funding = np.zeros(nf, dtype=MARKET_DTYPES[MarketKind.FUNDING])
        funding["ts_exch"] = np.repeat(t0 + hours.astype(np.int64) * HOUR_MS, S)
        funding["ts_recv"] = funding["ts_exch"] + _latency(rng_fund, nf)
        funding["sym"] = np.tile(np.arange(S, dtype=np.int16), len(hours))
        funding["rate"] = rate.ravel()
        funding["premium"] = prem.ravel()
        funding["oracle_px"] = spot.ravel()

    params = {
        "symbols": symbols,
        "days": days,
        "seed": seed,
        "start": str(start),
        "l2_every_min": l2_every_min,
        "trades_per_min": trades_per_min,
        "with_trades": with_trades,
        "with_l2": with_l2,
        "with_funding": with_funding,
    }
    meta = {
        "source": "hlquant.data.generate",
        "params": params,
        "profiles": {s: asdict(p) for s, p in zip(symbols, prof, strict=True)},
    }
    return MarketData(
        candles=candles,
        trades=trades,
        l2=l2,
        funding=funding,
        symbols=symbols,
        interval_ms=MINUTE_MS,
        meta=meta,
    )


def _dir_size(d: Path) -> int:
    return sum(p.stat().st_size for p in d.glob("*.parquet"))


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Generate synthetic market data (see module doc).")
    ap.add_argument("--out", required=True, help="output directory (Parquet, one file a stream)")
    ap.add_argument("--symbols", default="BTC,ETH,SOL")
    ap.add_argument("--n-symbols", type=int, default=None,
                    help="generate this many symbols GEN000.. instead of --symbols")
    ap.add_argument("--days", type=float, default=7)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--start", default="2026-01-05")
    ap.add_argument("--l2-every-min", type=int, default=5)
    ap.add_argument("--trades-per-min", type=float, default=6.0)
    ap.add_argument("--no-trades", action="store_true")
    ap.add_argument("--no-l2", action="store_true")
    a = ap.parse_args(argv)
    t = time.perf_counter()
    md = generate(
        symbols=tuple(s for s in a.symbols.split(",") if s),
        days=a.days,
        seed=a.seed,
        start=a.start,
        l2_every_min=a.l2_every_min,
        trades_per_min=a.trades_per_min,
        with_trades=not a.no_trades,
        with_l2=not a.no_l2,
        n_symbols=a.n_symbols,
    )
    dt = time.perf_counter() - t
    out = md.save(a.out)
    print(f"generated {len(md):,} events in {dt:.2f}s: {md.counts()}")
    print(f"wrote {out} ({_dir_size(out) / 1e6:.2f} MB), fingerprint {md.fingerprint()}")


if __name__ == "__main__":
    main()
