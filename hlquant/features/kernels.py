"""Python face of the feature kernels: specs, and Feature objects with an
incremental ``update`` and a whole-array ``run`` backed by the same kernel.

A spec is the dict strategies declare::

    {"name": "ema_fast", "kind": "ema", "input": "candle.close", "params": {"span": 10}}
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

PAIR_INPUTS = ("trade", "candle")  # (price, size): trade px/sz, candle close/volume
BOOK_INPUTS = ("l2", "bbo")  # (bid sizes, ask sizes)


@dataclass(frozen=True)
class FeatureSpec:
    """A feature: ``kind`` of kernel, the market ``input`` it reads, and its params."""

    name: str
    kind: str
    input: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def stream(self) -> str:
        """Source stream name (candle, trade, l2, bbo, funding, mark)."""
        return self.input.split(".")[0]


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


KINDS: dict[str, _Kind] = {
    "ema": _Kind(SCALAR_INPUTS, {"span": None, "alpha": None}, _ema, lambda p: 1),
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
                  lambda p: 1),
    "obi": _Kind(BOOK_INPUTS, {"depth": 5, "smooth_span": 0}, _obi, lambda p: 1),
}
"""Registered feature kinds: allowed inputs, parameters (None = required)."""


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
            extra = sorted(set(s) - {"name", "kind", "input", "params"})
            if extra:
                raise ValueError(f"feature {s['name']!r}: unknown field(s) {extra}")
            spec = FeatureSpec(str(s["name"]), str(s["kind"]), str(s["input"]), dict(s.get("params") or {}))
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
        if spec.name in names:
            raise ValueError(f"feature name {spec.name!r} declared twice")
        names.add(spec.name)
        build_feature(spec)  # validates parameter values
        out.append(spec)
    return out


class Feature:
    """One feature instance for one symbol: ``update`` steps, ``run`` does arrays."""

    __slots__ = ("spec", "name", "state", "_step", "_run", "_args", "warmup", "_init")

    def __init__(self, spec: FeatureSpec) -> None:
        k = KINDS[spec.kind]
        params = {**{p: d for p, d in k.params.items() if d is not None}, **dict(spec.params)}
        state, step, run, args = k.make(params)
        self.spec, self.name = spec, spec.name
        self._init = state
        self.state = state.copy()
        self._step, self._run, self._args = step, run, args
        self.warmup = k.warmup(params)

    def reset(self) -> None:
        self.state = self._init.copy()

    def update(self, *x: Any) -> float:
        """One observation (O(1)); book inputs take (bid_sizes, ask_sizes) arrays."""
        return float(self._step(self.state, *x, *self._args))

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
