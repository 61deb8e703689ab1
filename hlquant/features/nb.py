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
- rsi, atr, rolling min/max, bollinger, macd, pair (corr/beta), count: beside each kernel
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


# --- RSI (Wilder) -------------------------------------------------------------
# state: [n_changes, has_prev, prev, avg_gain, avg_loss, period, sum_gain, sum_loss]
def rsi_state(period: int) -> np.ndarray:
    if period < 1:
        raise ValueError(f"rsi period must be >= 1, got {period}")
    s = np.zeros(8)
    s[5] = period
    return s


@njit(cache=True)
def rsi_step(state, x):
    """Wilder's RSI: the first average is the mean of the first ``period`` changes, then
    avg = (avg * (period - 1) + change) / period. 100 when there were no losses (50 when
    prices did not move at all)."""
    if x != x:
        return NAN
    if state[1] == 0.0:
        state[1] = 1.0
        state[2] = x
        return NAN
    d = x - state[2]
    state[2] = x
    g = d if d > 0.0 else 0.0
    lo = -d if d < 0.0 else 0.0
    p = state[5]
    state[0] += 1.0
    n = state[0]
    if n <= p:
        state[6] += g
        state[7] += lo
        if n < p:
            return NAN
        state[3] = state[6] / p
        state[4] = state[7] / p
    else:
        state[3] = (state[3] * (p - 1.0) + g) / p
        state[4] = (state[4] * (p - 1.0) + lo) / p
    if state[4] == 0.0:
        return 50.0 if state[3] == 0.0 else 100.0
    return 100.0 - 100.0 / (1.0 + state[3] / state[4])


@njit(cache=True)
def rsi_run(state, xs, out):
    for i in range(xs.shape[0]):
        out[i] = rsi_step(state, xs[i])


# --- ATR (Wilder) -------------------------------------------------------------
# state: [n, has_prev, prev_close, atr, sum_tr, period]
def atr_state(period: int) -> np.ndarray:
    if period < 1:
        raise ValueError(f"atr period must be >= 1, got {period}")
    s = np.zeros(6)
    s[5] = period
    return s


@njit(cache=True)
def atr_step(state, h, lo, c):
    """True range max(h - l, |h - prev close|, |l - prev close|) (h - l on the first bar),
    averaged like Wilder: the mean of the first ``period``, then (atr * (p - 1) + tr) / p."""
    if h != h or lo != lo or c != c:
        return NAN
    tr = h - lo
    if state[1] != 0.0:
        pc = state[2]
        a = abs(h - pc)
        b = abs(lo - pc)
        if a > tr:
            tr = a
        if b > tr:
            tr = b
    state[1] = 1.0
    state[2] = c
    p = state[5]
    state[0] += 1.0
    n = state[0]
    if n <= p:
        state[4] += tr
        if n < p:
            return NAN
        state[3] = state[4] / p
    else:
        state[3] = (state[3] * (p - 1.0) + tr) / p
    return state[3]


@njit(cache=True)
def atr_run(state, hs, ls, cs, out):
    for i in range(hs.shape[0]):
        out[i] = atr_step(state, hs[i], ls[i], cs[i])


# --- rolling min / max (monotonic deque, amortized O(1)) ----------------------
# state: [window, i, head, size] + vals[window] + idx[window]
def rolling_extreme_state(window: int) -> np.ndarray:
    if window < 1:
        raise ValueError(f"rolling min/max window must be >= 1, got {window}")
    s = np.zeros(4 + 2 * window)
    s[0] = window
    return s


@njit(cache=True)
def rolling_extreme_step(state, x, sign):
    """Minimum (sign=1) or maximum (sign=-1) of the last ``window`` valid observations."""
    if x != x:
        return NAN
    w = int(state[0])
    state[1] += 1.0
    i = state[1]
    head = int(state[2])
    size = int(state[3])
    v = sign * x
    # drop from the back every value that can never be the extreme again
    while size > 0:
        back = (head + size - 1) % w
        if sign * state[4 + back] >= v:
            size -= 1
        else:
            break
    # drop from the front what left the window
    while size > 0 and state[4 + w + head] <= i - w:
        head = (head + 1) % w
        size -= 1
    pos = (head + size) % w
    state[4 + pos] = x
    state[4 + w + pos] = i
    size += 1
    state[2] = head
    state[3] = size
    if i < w:
        return NAN
    return state[4 + head]


@njit(cache=True)
def rolling_extreme_run(state, xs, out, sign):
    for i in range(xs.shape[0]):
        out[i] = rolling_extreme_step(state, xs[i], sign)


# --- Bollinger bands (rolling mean and population standard deviation) --------------
# state: the rolling layout above
BOLLINGER_BANDS = ("mid", "upper", "lower", "pct_b", "width")


@njit(cache=True)
def bollinger_step(state, x, k, band):
    """One of the bands of mean +- k * population std over ``window`` (``band``: index in
    BOLLINGER_BANDS: mid, upper, lower, %b = (x - lower) / (upper - lower), width =
    (upper - lower) / mid)."""
    if x != x:
        return NAN
    n = _roll_push(state, x)
    if n < int(state[4]):
        return NAN
    mid = state[2]
    sd = math.sqrt(state[3] / n)
    up = mid + k * sd
    lo = mid - k * sd
    if band == 0:
        return mid
    if band == 1:
        return up
    if band == 2:
        return lo
    if band == 3:
        return (x - lo) / (up - lo) if up > lo else NAN
    return (up - lo) / mid if mid != 0.0 else NAN


@njit(cache=True)
def bollinger_run(state, xs, out, k, band):
    for i in range(xs.shape[0]):
        out[i] = bollinger_step(state, xs[i], k, band)


# --- MACD -----------------------------------------------------------------------
# state: [initialised, ema_fast, ema_slow, signal_initialised, signal]
MACD_LINES = ("macd", "signal", "hist")


def macd_state() -> np.ndarray:
    return np.zeros(5)


@njit(cache=True)
def macd_step(state, x, a_fast, a_slow, a_sig, line):
    """EMA(fast) - EMA(slow) (``line`` 0), its EMA over ``signal`` (1) or the difference of
    the two (2, the histogram). EMAs are seeded with the first value, as ``ema``."""
    if x != x:
        return NAN
    if state[0] == 0.0:
        state[0] = 1.0
        state[1] = x
        state[2] = x
    else:
        state[1] += a_fast * (x - state[1])
        state[2] += a_slow * (x - state[2])
    m = state[1] - state[2]
    if state[3] == 0.0:
        state[3] = 1.0
        state[4] = m
    else:
        state[4] += a_sig * (m - state[4])
    if line == 0:
        return m
    if line == 1:
        return state[4]
    return m - state[4]


@njit(cache=True)
def macd_run(state, xs, out, a_fast, a_slow, a_sig, line):
    for i in range(xs.shape[0]):
        out[i] = macd_step(state, xs[i], a_fast, a_slow, a_sig, line)


# --- rolling correlation and beta of two price series' log returns ---------------
# state: [has_prev, prev_x, prev_y, n, pos, window, mean_x, mean_y, c_xy, m2_x, m2_y]
#        + ring_x[window] + ring_y[window]                    (Welford with removal)
def pair_state(window: int) -> np.ndarray:
    if window < 2:
        raise ValueError(f"correlation/beta window must be >= 2, got {window}")
    s = np.zeros(11 + 2 * window)
    s[5] = window
    return s


@njit(cache=True)
def pair_step(state, px, py, what):
    """Rolling statistic of the log returns of x and y over ``window`` pairs of returns:
    ``what`` 0 = correlation, 1 = beta of x on y (cov(x, y) / var(y))."""
    if px != px or py != py or px <= 0.0 or py <= 0.0:
        return NAN
    if state[0] == 0.0:
        state[0] = 1.0
        state[1] = px
        state[2] = py
        return NAN
    x = math.log(px / state[1])
    y = math.log(py / state[2])
    state[1] = px
    state[2] = py
    w = int(state[5])
    n = int(state[3])
    pos = int(state[4])
    if n == w:  # remove the oldest pair
        ox = state[11 + pos]
        oy = state[11 + w + pos]
        n1 = n - 1
        mx_old = state[6]
        my_old = state[7]
        mx = mx_old - (ox - mx_old) / n1
        my = my_old - (oy - my_old) / n1
        state[8] -= (ox - mx) * (oy - my_old)
        state[9] -= (ox - mx) * (ox - mx_old)
        state[10] -= (oy - my) * (oy - my_old)
        state[6] = mx
        state[7] = my
        n = n1
    state[11 + pos] = x
    state[11 + w + pos] = y
    state[4] = (pos + 1) % w
    n += 1
    dx = x - state[6]
    state[6] += dx / n
    dy = y - state[7]
    state[7] += dy / n
    state[8] += dx * (y - state[7])
    state[9] += dx * (x - state[6])
    state[10] += dy * (y - state[7])
    if state[9] < 0.0:
        state[9] = 0.0
    if state[10] < 0.0:
        state[10] = 0.0
    state[3] = n
    if n < w:
        return NAN
    if what == 0:
        d = math.sqrt(state[9] * state[10])
        return state[8] / d if d > 0.0 else NAN
    return state[8] / state[10] if state[10] > 0.0 else NAN


@njit(cache=True)
def pair_run(state, pxs, pys, out, what):
    for i in range(pxs.shape[0]):
        out[i] = pair_step(state, pxs[i], pys[i], what)


# --- bar counter (what ``Agent.history`` declares) --------------------------------
def count_state() -> np.ndarray:
    return np.zeros(1)


@njit(cache=True)
def count_step(state, x):
    """How many observations so far (the value of a ``history`` feature)."""
    if x != x:
        return NAN
    state[0] += 1.0
    return state[0]


@njit(cache=True)
def count_run(state, xs, out):
    for i in range(xs.shape[0]):
        out[i] = count_step(state, xs[i])
