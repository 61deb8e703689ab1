"""Feature kernels (numba): one family per feature, written once.

Each feature keeps its whole state in a 1-D float64 array. ``<f>_step`` is
the O(1) incremental update (live mode, one event at a time); ``<f>_run``
loops ``<f>_step`` over an array (backtests, research). Because the state
carries over, running two chunks in turn equals running the whole array, and
running a chunk of one equals one step: the three uses cannot drift apart.

NaN inputs leave the state untouched and produce NaN for that observation,
so a missing print never poisons a rolling window.

State layouts (``*_state(...)`` allocate them):
- ema:        [initialised, value]
- rolling:    [n, pos, mean, m2, window] + ring[window]       (Welford with removal)
- log_return: [has_prev, prev]
- vwap:       [n, pos, sum_pv, sum_v, window] + pv[window] + v[window]
- rvol:       [has_prev, prev, n, pos, sumsq, window] + ring[window]
- obi:        [initialised, value]  (EMA smoothing of the raw imbalance)
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

NAN = np.nan


# --- EMA ------------------------------------------------------------------
def ema_state() -> np.ndarray:
    return np.zeros(2)


@njit(cache=True)
def ema_step(state, x, alpha):
    if x != x:
        return NAN
    if state[0] == 0.0:
        state[0] = 1.0
        state[1] = x
    else:
        state[1] += alpha * (x - state[1])
    return state[1]


@njit(cache=True)
def ema_run(state, xs, out, alpha):
    for i in range(xs.shape[0]):
        out[i] = ema_step(state, xs[i], alpha)


# --- rolling mean / std / zscore (Welford with removal) ---------------------
def rolling_state(window: int) -> np.ndarray:
    if window < 2:
        raise ValueError(f"rolling window must be >= 2, got {window}")
    s = np.zeros(5 + window)
    s[4] = window
    return s


@njit(cache=True)
def _roll_push(state, x):
    """Add x to the window (dropping the oldest when full); returns n in window."""
    w = int(state[4])
    n = int(state[0])
    pos = int(state[1])
    if n == w:
        y = state[5 + pos]
        # remove y
        n1 = n - 1
        d = y - state[2]
        state[2] -= d / n1
        state[3] -= d * (y - state[2])
        n = n1
    state[5 + pos] = x
    state[1] = (pos + 1) % w
    n += 1
    d = x - state[2]
    state[2] += d / n
    state[3] += d * (x - state[2])
    if state[3] < 0.0:  # rounding can leave a tiny negative sum of squares
        state[3] = 0.0
    state[0] = n
    return n


@njit(cache=True)
def rolling_mean_step(state, x):
    if x != x:
        return NAN
    n = _roll_push(state, x)
    return state[2] if n == int(state[4]) else NAN


@njit(cache=True)
def rolling_std_step(state, x):
    if x != x:
        return NAN
    n = _roll_push(state, x)
    if n < int(state[4]):
        return NAN
    return math.sqrt(state[3] / (n - 1))


@njit(cache=True)
def zscore_step(state, x):
    if x != x:
        return NAN
    n = _roll_push(state, x)
    if n < int(state[4]):
        return NAN
    sd = math.sqrt(state[3] / (n - 1))
    if sd == 0.0:
        return 0.0
    return (x - state[2]) / sd


@njit(cache=True)
def rolling_mean_run(state, xs, out):
    for i in range(xs.shape[0]):
        out[i] = rolling_mean_step(state, xs[i])


@njit(cache=True)
def rolling_std_run(state, xs, out):
    for i in range(xs.shape[0]):
        out[i] = rolling_std_step(state, xs[i])


@njit(cache=True)
def zscore_run(state, xs, out):
    for i in range(xs.shape[0]):
        out[i] = zscore_step(state, xs[i])


# --- log return -------------------------------------------------------------
def log_return_state() -> np.ndarray:
    return np.zeros(2)


@njit(cache=True)
def log_return_step(state, x):
    if x != x or x <= 0.0:
        return NAN
    if state[0] == 0.0:
        state[0] = 1.0
        state[1] = x
        return NAN
    r = math.log(x / state[1])
    state[1] = x
    return r


@njit(cache=True)
def log_return_run(state, xs, out):
    for i in range(xs.shape[0]):
        out[i] = log_return_step(state, xs[i])


# --- rolling VWAP -----------------------------------------------------------
def vwap_state(window: int) -> np.ndarray:
    if window < 1:
        raise ValueError(f"vwap window must be >= 1, got {window}")
    s = np.zeros(5 + 2 * window)
    s[4] = window
    return s


@njit(cache=True)
def vwap_step(state, px, sz):
    if px != px or sz != sz or sz <= 0.0:
        return NAN
    w = int(state[4])
    n = int(state[0])
    pos = int(state[1])
    if n == w:
        state[2] -= state[5 + pos]
        state[3] -= state[5 + w + pos]
        n -= 1
    pv = px * sz
    state[5 + pos] = pv
    state[5 + w + pos] = sz
    state[2] += pv
    state[3] += sz
    state[1] = (pos + 1) % w
    state[0] = n + 1
    return state[2] / state[3] if state[3] > 0.0 else NAN


@njit(cache=True)
def vwap_run(state, pxs, szs, out):
    for i in range(pxs.shape[0]):
        out[i] = vwap_step(state, pxs[i], szs[i])


# --- realized volatility ----------------------------------------------------
def rvol_state(window: int) -> np.ndarray:
    if window < 1:
        raise ValueError(f"realized_vol window must be >= 1, got {window}")
    s = np.zeros(6 + window)
    s[5] = window
    return s


@njit(cache=True)
def rvol_step(state, x, factor):
    if x != x or x <= 0.0:
        return NAN
    if state[0] == 0.0:
        state[0] = 1.0
        state[1] = x
        return NAN
    r = math.log(x / state[1])
    state[1] = x
    w = int(state[5])
    n = int(state[2])
    pos = int(state[3])
    if n == w:
        state[4] -= state[6 + pos]
        n -= 1
    sq = r * r
    state[6 + pos] = sq
    state[4] += sq
    if state[4] < 0.0:
        state[4] = 0.0
    state[3] = (pos + 1) % w
    state[2] = n + 1
    if n + 1 < w:
        return NAN
    return math.sqrt(state[4]) * factor


@njit(cache=True)
def rvol_run(state, xs, out, factor):
    for i in range(xs.shape[0]):
        out[i] = rvol_step(state, xs[i], factor)


# --- order-book imbalance ---------------------------------------------------
def obi_state() -> np.ndarray:
    return np.zeros(2)


@njit(cache=True)
def obi_step(state, bid_sz, ask_sz, depth, alpha):
    b = 0.0
    a = 0.0
    k = min(depth, bid_sz.shape[0], ask_sz.shape[0])
    for j in range(k):
        if bid_sz[j] == bid_sz[j]:
            b += bid_sz[j]
        if ask_sz[j] == ask_sz[j]:
            a += ask_sz[j]
    if a + b <= 0.0:
        return NAN
    raw = (b - a) / (b + a)
    if alpha >= 1.0:
        return raw
    if state[0] == 0.0:
        state[0] = 1.0
        state[1] = raw
    else:
        state[1] += alpha * (raw - state[1])
    return state[1]


@njit(cache=True)
def obi_run(state, bid_sz, ask_sz, out, depth, alpha):
    for i in range(bid_sz.shape[0]):
        out[i] = obi_step(state, bid_sz[i], ask_sz[i], depth, alpha)
