"""A scikit-learn classifier that scores every symbol in one model call (``decide_batch``).

The model (trained in ``notebooks/05_classifier_batch_inference.ipynb``, saved with
skops; the bundled ``models/ml_classifier.skops`` is that notebook run with
``HLQUANT_MODEL_DIR=strategies/models``) gives the probability that a symbol's next ``horizon_min`` minutes of return
are positive, from hlquant's own features plus the sentiment series:

- ``z30``: z-score of the close over 30 bars; ``rv30``: realized volatility over 30
  bars; ``ret1``: the last bar's log return; ``trend``: EMA(10) / EMA(50) - 1;
- ``sentiment``: the latest sentiment observation (a connector's ``Signal``).

At each candle close the runner calls ``decide_batch`` once with the contexts of
every symbol that closed a bar: the agent reads their inputs into one matrix
(``batch_inputs``: a symbol with a stale input is left out and counted), calls
``predict_proba`` once and goes ``size_usd`` long above ``long_above``, short below
``short_below``, and keeps what it holds in between. ``MLClassifierPerSymbol`` is the same agent
deciding one symbol per call (one model call each): same decisions, many more
calls (``bench/inference_throughput.py`` measures the difference).

The model file is loaded at ``setup`` with ``skops.io.load``, trusting only the
types its loader lists for a scikit-learn pipeline (``TRUSTED``): a model file is
code-free, unlike a pickle. Training is in ``training_frame`` (the same features,
computed over history by the same kernels, and the sentiment visible at each bar
close: its receive time is not after the close) so training and trading read
identical inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hlquant.agents import Agent, Context, Intent

ROOT = Path(__file__).resolve().parent
DEFAULT_MODEL = ROOT / "models" / "ml_classifier.skops"
FEATURES = [
    {"name": "z30", "kind": "zscore", "input": "candle.close", "params": {"window": 30}},
    {"name": "rv30", "kind": "realized_vol", "input": "candle.close", "params": {"window": 30}},
    {"name": "ret1", "kind": "log_return", "input": "candle.close"},
    {"name": "ema10", "kind": "ema", "input": "candle.close", "params": {"span": 10}},
    {"name": "ema50", "kind": "ema", "input": "candle.close", "params": {"span": 50}},
]
FEATURE_NAMES = tuple(f["name"] for f in FEATURES)
SIGNAL_NAMES = ("sentiment",)
INPUT_NAMES = ("z30", "rv30", "ret1", "trend", "sentiment")
"""The model's columns, in order (``model_inputs``)."""
TRUSTED = [
    "sklearn.pipeline.Pipeline", "sklearn.preprocessing._data.StandardScaler",
    "sklearn.linear_model._logistic.LogisticRegression", "numpy.dtype",
]


def model_inputs(raw: np.ndarray) -> np.ndarray:
    """Rows of ``FEATURE_NAMES + SIGNAL_NAMES`` -> the model's ``INPUT_NAMES`` columns."""
    z30, rv30, ret1, ema10, ema50, sentiment = (raw[:, i] for i in range(6))
    return np.column_stack([z30, rv30, ret1, ema10 / ema50 - 1.0, sentiment])


def load_model(path: str | Path) -> Any:
    """A model saved with ``skops.io.dump``, loading only trusted scikit-learn types."""
    from skops.io import get_untrusted_types, load

    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"model file {p} not found: run notebooks/05_classifier_batch_inference.ipynb "
                                "or set strategy.model_path")
    unknown = [t for t in get_untrusted_types(file=p) if t not in TRUSTED]
    if unknown:
        raise ValueError(f"model file {p} holds types this strategy does not trust: {unknown}")
    return load(p, trusted=TRUSTED)


class MLClassifier(Agent):
    features = FEATURES
    signals = SIGNAL_NAMES
    defaults = {"model_path": None, "long_above": 0.6, "short_below": 0.4, "size_usd": 2_000.0}

    def setup(self, ctx: Context) -> None:
        self.model = load_model(self.params["model_path"] or DEFAULT_MODEL)
        self.side: dict[str, int] = {}
        self.calls = 0  # model calls, for the benchmark

    def _intent(self, ctx: Context, p: float) -> Intent | None:
        held = self.side.get(ctx.symbol, 0)
        side = 1 if p > self.params["long_above"] else (-1 if p < self.params["short_below"] else held)
        if side == held:
            return None
        self.side[ctx.symbol] = side
        return ctx.target(side * self.params["size_usd"] / ctx.price(), reason=f"p_up {p:.3f}")

    def decide_batch(self, ctxs: Sequence[Context]) -> list[Intent | None]:
        fresh, raw = self.batch_inputs(ctxs, FEATURE_NAMES, SIGNAL_NAMES)
        out: dict[int, Intent | None] = {}
        if len(fresh):
            x = model_inputs(raw)
            ok = np.isfinite(x).all(axis=1)  # features still warming up: no decision yet
            if ok.any():
                self.calls += 1
                p = self.model.predict_proba(x[ok])[:, 1]
                for c, pi in zip([c for c, k in zip(fresh, ok, strict=True) if k], p.tolist(), strict=True):
                    out[id(c)] = self._intent(c, pi)
        return [out.get(id(c)) for c in ctxs]


class MLClassifierPerSymbol(MLClassifier):
    """The same agent, one symbol per call (``decide``): one model call per decision."""

    decide_batch = Agent.decide_batch

    def decide(self, ctx: Context) -> Intent | None:
        raw = np.array([[ctx.feature(n) for n in FEATURE_NAMES] + [ctx.signal(n) for n in SIGNAL_NAMES]])
        x = model_inputs(raw)
        if not np.isfinite(x).all():
            return None
        self.calls += 1
        return self._intent(ctx, float(self.model.predict_proba(x)[0, 1]))


def training_frame(market: Any, sentiment: Any, horizon_min: int = 30, max_age_ms: int = 300_000) -> Any:
    """One row per candle: ``INPUT_NAMES`` as the agent would see them at that bar close,
    the symbol, the time and the label ``up`` (the next ``horizon_min`` minutes' log
    return > 0). ``sentiment``: a ``SignalSeries``; a bar takes the last observation
    *received* by its close and no older than ``max_age_ms`` (the staleness rule), so
    no row knows anything a live agent would not."""
    import pandas as pd

    from hlquant.core.events import MarketKind
    from hlquant.features.kernels import parse_specs
    from hlquant.features.pipeline import compute_columnar

    arrays = market.arrays()
    cols = compute_columnar(parse_specs(FEATURES), arrays, len(market.symbols))
    c = arrays[MarketKind.CANDLE]
    f = pd.DataFrame({n: cols[n].values for n in FEATURE_NAMES})
    f["ts"], f["symbol"] = c["ts_exch"], np.array(market.symbols, dtype=object)[c["sym"]]
    f["close"] = c["close"]
    s = sentiment.to_frame()
    s = s[s["name"] == "sentiment"].sort_values("ts_recv", kind="stable")
    parts = []
    for sym, g in f.groupby("symbol", sort=False):
        g = g.sort_values("ts")
        sg = s[s["symbol"] == sym][["ts_recv", "ts_exch", "value"]]
        g = pd.merge_asof(g, sg, left_on="ts", right_on="ts_recv", direction="backward")
        g["sentiment"] = g["value"].where(g["ts"] - g["ts_exch"] <= max_age_ms)
        fwd = g["close"].shift(-horizon_min)
        same = g["ts"].shift(-horizon_min) - g["ts"] == horizon_min * market.interval_ms
        g["fwd"] = np.log(fwd / g["close"]).where(same)
        parts.append(g)
    out = pd.concat(parts, ignore_index=True)
    x = model_inputs(out[[*FEATURE_NAMES, "sentiment"]].to_numpy(np.float64))
    res = pd.DataFrame(x, columns=list(INPUT_NAMES))
    res["ts"], res["symbol"], res["fwd"] = out["ts"].to_numpy(), out["symbol"].to_numpy(), out["fwd"].to_numpy()
    res = res[np.isfinite(res[list(INPUT_NAMES)]).all(axis=1) & res["fwd"].notna()].reset_index(drop=True)
    res["up"] = (res["fwd"] > 0).astype(int)
    return res
