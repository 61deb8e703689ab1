"""Python face of the feature kernels: specs, and Feature objects with an
incremental ``update`` and a whole-array ``run`` backed by the same kernel.

A spec is the dict strategies declare::

    {"name": "ema_fast", "kind": "ema", "input": "candle.close", "params": {"span": 10}}

Optional keys: ``timeframe`` ("1h", "15m", or ms) computes the feature on candles of that
length built from the base candles, updated only when such a candle has closed (no
look-ahead: the hour that is still forming is never used); ``warmup`` overrides how many
observations the feature needs before agents may read it (default: derived from its span
or window, ``KINDS[kind].warmup``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hlquant.features import nb

SCALAR_INPUTS = (
    "candle.close", "candle.open", "candle.high", "candle.low", "candle.volume",
    "trade.px", "trade.sz", "bbo.mid", "funding.rate", "funding.premium", "mark.px",
)
"""Inputs that feed one number per event."""

CANDLE_SCALAR_INPUTS = tuple(i for i in SCALAR_INPUTS if i.startswith("candle."))
PAIR_INPUTS = ("trade", "candle")  # (price, size): trade px/sz, candle close/volume
BOOK_INPUTS = ("l2", "bbo")  # (bid sizes, ask sizes)
HLC_INPUTS = ("candle.hlc",)  # (high, low, close)
TWO_SYMBOL_KINDS = ("corr", "beta")
"""Kinds computed between a symbol and a reference symbol (``params.ref``)."""

_TF_UNITS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_timeframe(tf: Any) -> int | None:
    """"1h" / "15m" / "30s" / "1d" / milliseconds -> milliseconds (None stays None)."""
    if tf is None:
        return None
    if isinstance(tf, bool):
        raise ValueError(f"timeframe must be like '1h' or milliseconds, got {tf!r}")
    if isinstance(tf, int | float):
        ms = int(tf)
    else:
        text = str(tf).strip()
        unit = text[-1:].lower()
        if unit not in _TF_UNITS or not text[:-1].isdigit():
            raise ValueError(f"timeframe must be like '1h', '15m', '30s', '1d' or ms, got {tf!r}")
        ms = int(text[:-1]) * _TF_UNITS[unit]
    if ms <= 0:
        raise ValueError(f"timeframe must be > 0, got {tf!r}")
    return ms


@dataclass(frozen=True)
class FeatureSpec:
    """A feature: ``kind`` of kernel, the market ``input`` it reads, and its params."""

    name: str
    kind: str
    input: str
    params: Mapping[str, Any] = field(default_factory=dict)
    timeframe: int | None = None  # ms; None: every event of the input stream
    warmup: int | None = None  # observations before the value may be read; None: the kind's

    @property
    def stream(self) -> str:
        """Source stream name (candle, trade, l2, bbo, funding, mark)."""
        return self.input.split(".")[0]

    @property
    def ref(self) -> str | None:
        """The reference symbol of a two-symbol kind (corr, beta)."""
        return str(self.params["ref"]) if self.kind in TWO_SYMBOL_KINDS else None


@dataclass(frozen=True)
class _Kind:
    inputs: tuple[str, ...]
    params: dict[str, Any]  # name -> default (None = required)
    make: Callable[[Mapping[str, Any]], tuple[np.ndarray, Callable, Callable, tuple]]
    warmup: Callable[[Mapping[str, Any]], int]


def _ema(p):
    span = p.get("span")
    alpha = p.get("alpha")
    if alpha is None:
        if span is None or span < 1:
            raise ValueError("ema needs span >= 1 or alpha in (0, 1]")
        alpha = 2.0 / (float(span) + 1.0)
    if not 0 < alpha <= 1:
        raise ValueError(f"ema alpha must be in (0, 1], got {alpha}")
    return nb.ema_state(), nb.ema_step, nb.ema_run, (float(alpha),)


def _rolling(step, run):
    def make(p):
        return nb.rolling_state(int(p["window"])), step, run, ()

    return make


def _rvol(p):
    return nb.rvol_state(int(p["window"])), nb.rvol_step, nb.rvol_run, (float(math.sqrt(p.get("annualize", 1.0))),)


def _obi(p):
    a = p.get("smooth_span")
    alpha = 1.0 if not a else 2.0 / (float(a) + 1.0)
    return nb.obi_state(), nb.obi_step, nb.obi_run, (int(p.get("depth", 5)), alpha)


def _ema_warmup(p):
    if p.get("span") is not None:
        return max(1, int(p["span"]))
    return max(1, int(round(2.0 / float(p["alpha"]) - 1.0)))


def _extreme(sign):
    def make(p):
        return nb.rolling_extreme_state(int(p["window"])), nb.rolling_extreme_step, nb.rolling_extreme_run, (
            float(sign),)

    return make


def _choice(p, key, options):
    v = p.get(key)
    if v not in options:
        raise ValueError(f"{key} must be one of {list(options)}, got {v!r}")
    return options.index(v)


def _bollinger(p):
    k = float(p.get("k", 2.0))
    if not k > 0:
        raise ValueError(f"bollinger k must be > 0, got {k}")
    return (nb.rolling_state(int(p["window"])), nb.bollinger_step, nb.bollinger_run,
            (k, _choice(p, "band", nb.BOLLINGER_BANDS)))


def _macd(p):
    fast, slow, sig = int(p["fast"]), int(p["slow"]), int(p["signal"])
    if not 1 <= fast < slow or sig < 1:
        raise ValueError(f"macd needs 1 <= fast < slow and signal >= 1, got {fast}/{slow}/{sig}")
    return nb.macd_state(), nb.macd_step, nb.macd_run, (
        2.0 / (fast + 1.0), 2.0 / (slow + 1.0), 2.0 / (sig + 1.0), _choice(p, "line", nb.MACD_LINES))


def _macd_warmup(p):
    return int(p["slow"]) + (0 if p.get("line") == "macd" else int(p["signal"]) - 1)


def _pair(what):
    def make(p):
        if not isinstance(p.get("ref"), str) or not p["ref"]:
            raise ValueError(f"ref must name the reference symbol, got {p.get('ref')!r}")
        return nb.pair_state(int(p["window"])), nb.pair_step, nb.pair_run, (what,)

    return make


def _history(p):
    if int(p["length"]) < 1:
        raise ValueError(f"history length must be >= 1, got {p['length']}")
    return nb.count_state(), nb.count_step, nb.count_run, ()


KINDS: dict[str, _Kind] = {
    "ema": _Kind(SCALAR_INPUTS, {"span": None, "alpha": None}, _ema, _ema_warmup),
    "rolling_mean": _Kind(SCALAR_INPUTS, {"window": None},
                          _rolling(nb.rolling_mean_step, nb.rolling_mean_run), lambda p: int(p["window"])),
    "rolling_std": _Kind(SCALAR_INPUTS, {"window": None},
                         _rolling(nb.rolling_std_step, nb.rolling_std_run), lambda p: int(p["window"])),
    "zscore": _Kind(SCALAR_INPUTS, {"window": None},
                    _rolling(nb.zscore_step, nb.zscore_run), lambda p: int(p["window"])),
    "log_return": _Kind(SCALAR_INPUTS, {},
                        lambda p: (nb.log_return_state(), nb.log_return_step, nb.log_return_run, ()),
                        lambda p: 2),
    "realized_vol": _Kind(SCALAR_INPUTS, {"window": None, "annualize": 1.0}, _rvol,
                          lambda p: int(p["window"]) + 1),
    "vwap": _Kind(PAIR_INPUTS, {"window": None},
                  lambda p: (nb.vwap_state(int(p["window"])), nb.vwap_step, nb.vwap_run, ()),
                  lambda p: int(p["window"])),
    "obi": _Kind(BOOK_INPUTS, {"depth": 5, "smooth_span": 0}, _obi,
                 lambda p: max(1, int(p.get("smooth_span") or 1))),
    "rsi": _Kind(SCALAR_INPUTS, {"period": 14},
                 lambda p: (nb.rsi_state(int(p["period"])), nb.rsi_step, nb.rsi_run, ()),
                 lambda p: int(p["period"]) + 1),
    "atr": _Kind(HLC_INPUTS, {"period": 14},
                 lambda p: (nb.atr_state(int(p["period"])), nb.atr_step, nb.atr_run, ()),
                 lambda p: int(p["period"])),
    "rolling_min": _Kind(SCALAR_INPUTS, {"window": None}, _extreme(1), lambda p: int(p["window"])),
    "rolling_max": _Kind(SCALAR_INPUTS, {"window": None}, _extreme(-1), lambda p: int(p["window"])),
    "bollinger": _Kind(SCALAR_INPUTS, {"window": 20, "k": 2.0, "band": "pct_b"}, _bollinger,
                       lambda p: int(p["window"])),
    "macd": _Kind(SCALAR_INPUTS, {"fast": 12, "slow": 26, "signal": 9, "line": "hist"}, _macd,
                  _macd_warmup),
    "corr": _Kind(CANDLE_SCALAR_INPUTS, {"ref": None, "window": None}, _pair(0),
                  lambda p: int(p["window"]) + 1),
    "beta": _Kind(CANDLE_SCALAR_INPUTS, {"ref": None, "window": None}, _pair(1),
                  lambda p: int(p["window"]) + 1),
    "history": _Kind(("candle.close",), {"length": None}, _history, lambda p: int(p["length"])),
}
"""Registered feature kinds: allowed inputs, parameters (None = required), and the
warm-up (observations before agents may read the value) derived from the parameters:
ema: span; rolling kinds, bollinger, vwap: window; log_return: 2; realized_vol: window + 1;
rsi: period + 1 prices; atr: period bars; macd: slow (+ signal - 1 for signal and hist);
corr / beta: window + 1 paired closes; history: length candles.

``corr`` and ``beta`` pair each close of a symbol with the close of ``params.ref`` at the
same bar time and use the log returns between consecutive common bars; a symbol's value
at a bar covers the pairs before that bar (both closes known: no look-ahead, whichever
symbol's candle arrives first)."""


def parse_specs(specs: Sequence[Mapping[str, Any] | FeatureSpec]) -> list[FeatureSpec]:
    """Validate spec dicts; errors name the feature and the bad field."""
    out: list[FeatureSpec] = []
    names: set[str] = set()
    for i, s in enumerate(specs):
        if isinstance(s, FeatureSpec):
            spec = s
        else:
            s = dict(s)
            missing = [k for k in ("name", "kind", "input") if k not in s]
            if missing:
                raise ValueError(f"feature spec #{i} misses {missing}: {s}")
            extra = sorted(set(s) - {"name", "kind", "input", "params", "timeframe", "warmup"})
            if extra:
                raise ValueError(f"feature {s['name']!r}: unknown field(s) {extra}")
            try:
                tf = parse_timeframe(s.get("timeframe"))
            except ValueError as e:
                raise ValueError(f"feature {s['name']!r}: {e}") from None
            wu = s.get("warmup")
            if wu is not None and (isinstance(wu, bool) or not isinstance(wu, int) or wu < 0):
                raise ValueError(f"feature {s['name']!r}: warmup must be an int >= 0, got {wu!r}")
            spec = FeatureSpec(str(s["name"]), str(s["kind"]), str(s["input"]), dict(s.get("params") or {}),
                               tf, wu)
        k = KINDS.get(spec.kind)
        if k is None:
            raise ValueError(f"feature {spec.name!r}: unknown kind {spec.kind!r}; known: {sorted(KINDS)}")
        if spec.input not in k.inputs:
            raise ValueError(
                f"feature {spec.name!r}: kind {spec.kind!r} cannot read input {spec.input!r}; "
                f"allowed: {list(k.inputs)}"
            )
        unknown = sorted(set(spec.params) - set(k.params))
        if unknown:
            raise ValueError(f"feature {spec.name!r}: unknown param(s) {unknown} for {spec.kind}")
        required = [p for p, d in k.params.items() if d is None and p not in spec.params]
        if spec.kind == "ema":
            required = [] if ("span" in spec.params or "alpha" in spec.params) else ["span"]
        if required:
            raise ValueError(f"feature {spec.name!r}: missing param(s) {required} for {spec.kind}")
        if spec.timeframe is not None and not spec.input.startswith("candle"):
            raise ValueError(f"feature {spec.name!r}: timeframe needs a candle input, got {spec.input!r}")
        if spec.timeframe is not None and spec.kind in TWO_SYMBOL_KINDS:
            raise ValueError(f"feature {spec.name!r}: {spec.kind} has no timeframe option")
        if spec.name in names:
            raise ValueError(f"feature name {spec.name!r} declared twice")
        names.add(spec.name)
        build_feature(spec)  # validates parameter values
        out.append(spec)
    return out


class Feature:
    """One feature instance for one symbol: ``update`` steps, ``run`` does arrays."""

    __slots__ = ("spec", "name", "state", "_step", "_run", "_args", "warmup", "_init", "seen")

    def __init__(self, spec: FeatureSpec) -> None:
        k = KINDS[spec.kind]
        params = {**{p: d for p, d in k.params.items() if d is not None}, **dict(spec.params)}
        state, step, run, args = k.make(params)
        self.spec, self.name = spec, spec.name
        self._init = state
        self.state = state.copy()
        self._step, self._run, self._args = step, run, args
        self.warmup = int(spec.warmup) if spec.warmup is not None else int(k.warmup(params))
        self.seen = 0  # observations so far (a NaN first input is not one)

    def reset(self) -> None:
        self.state = self._init.copy()
        self.seen = 0

    @property
    def warm(self) -> bool:
        """Enough observations for agents to read the value (``warmup``)."""
        return self.seen >= self.warmup

    def update(self, *x: Any) -> float:
        """One observation (O(1)); book inputs take (bid_sizes, ask_sizes) arrays."""
        x0 = x[0]
        if not isinstance(x0, float) or x0 == x0:
            self.seen += 1
        return float(self._step(self.state, *x, *self._args))

    def snapshot(self) -> bytes:
        """Kernel state and observation count, as bytes (a stream processor's checkpoint)."""
        return self.state.tobytes() + np.array([float(self.seen)]).tobytes()

    def restore(self, raw: bytes) -> bool:
        """Load a ``snapshot``; a bare kernel state (older checkpoints) counts as warm.
        False when ``raw`` is not a state of this feature."""
        n = self.state.nbytes
        if len(raw) == n + 8:
            self.seen = int(np.frombuffer(raw[n:], dtype=np.float64)[0])
        elif len(raw) == n:
            self.seen = self.warmup
        else:
            return False
        self.state = np.frombuffer(raw[:n], dtype=self.state.dtype).reshape(self.state.shape).copy()
        return True

    def run(self, *arrays: np.ndarray, state: np.ndarray | None = None) -> np.ndarray:
        """Whole arrays on a fresh state (or a given one, which is updated in place)."""
        st = self._init.copy() if state is None else state
        arrays = tuple(np.ascontiguousarray(a, dtype=np.float64) for a in arrays)
        out = np.empty(arrays[0].shape[0])
        self._run(st, *arrays, out, *self._args)
        return out


def build_feature(spec: FeatureSpec | Mapping[str, Any]) -> Feature:
    if not isinstance(spec, FeatureSpec):
        spec = parse_specs([spec])[0]
    return Feature(spec)
