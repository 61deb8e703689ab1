"""Order latency of the SimVenue: one constant, or a distribution measured live.

An order the SimVenue accepts at ``t`` arrives at ``t + delay_ms()`` and executes
against the market as it is then. ``constant`` gives ``venue.latency_ms`` to every
order (the default). ``empirical`` draws each order's delay from measured samples,
e.g. the decision-to-exchange latencies of a paper or live session that
``hlquant parity RUN_DIR`` writes to ``latency_samples.csv``, so a backtest can
run with the latency the strategy really met (``venue.latency=empirical
venue.latency_file=...``). Draws come from a generator seeded with
``venue.latency_seed``: the same samples, seed and sequence of orders give the
same delays, so a backtest stays reproducible.

Sample files: CSV with a ``latency_ms`` column (other columns ignored), a text
file with one number per line, or JSON (a list, or ``{"latency_ms": [...]}``).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from hlquant.core.errors import ConfigError

LATENCY_MODELS = ("constant", "empirical")
SAMPLE_COLUMN = "latency_ms"


class LatencySettings(Protocol):
    """The fields of ``SimVenueConfig`` a latency model is built from."""

    latency: str
    latency_ms: int
    latency_file: str | None
    latency_seed: int


class LatencyModel(Protocol):
    def delay_ms(self) -> int:
        """Delay of the next accepted order, in ms (>= 0)."""
        ...


class ConstantLatency:
    """Every order waits the same ``ms``."""

    def __init__(self, ms: int) -> None:
        if ms < 0:
            raise ConfigError(f"venue.latency_ms must be >= 0, got {ms}")
        self.ms = int(ms)

    def delay_ms(self) -> int:
        return self.ms


class EmpiricalLatency:
    """Each order's delay drawn (with replacement, seeded) from measured samples."""

    def __init__(self, samples_ms: Sequence[float], seed: int = 0, source: str = "samples") -> None:
        arr = np.asarray(list(samples_ms), dtype=float)
        if not len(arr):
            raise ConfigError(f"venue.latency_file: {source} holds no latency samples")
        bad = ~np.isfinite(arr) | (arr < 0)
        if bad.any():
            raise ConfigError(f"venue.latency_file: {source} sample #{int(np.argmax(bad))} is "
                              f"{arr[bad][0]!r}; samples must be finite and >= 0 ms")
        self.samples = np.rint(arr).astype(np.int64)
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)

    def delay_ms(self) -> int:
        return int(self.samples[self._rng.integers(len(self.samples))])


def load_samples(path: str | Path) -> np.ndarray:
    """Latency samples (ms) from a CSV / text / JSON file (see module docstring)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"venue.latency_file: {p}: no such file")
    text = p.read_text()
    if p.suffix.lower() == ".json":
        data = json.loads(text)
        values = data.get(SAMPLE_COLUMN) if isinstance(data, dict) else data
        if not isinstance(values, list):
            raise ConfigError(f"venue.latency_file: {p}: expected a list or {{{SAMPLE_COLUMN!r}: [...]}}")
        return np.asarray(values, dtype=float)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if lines and SAMPLE_COLUMN in [c.strip() for c in lines[0].split(",")]:
        out = []
        for i, row in enumerate(csv.DictReader(lines), start=2):
            try:
                out.append(float(row[SAMPLE_COLUMN]))
            except (TypeError, ValueError):
                raise ConfigError(f"venue.latency_file: {p}: row {i}: {SAMPLE_COLUMN}="
                                  f"{row.get(SAMPLE_COLUMN)!r} is not a number") from None
        return np.asarray(out, dtype=float)
    out = []
    for i, ln in enumerate(lines, start=1):
        try:
            out.append(float(ln.strip()))
        except ValueError:
            raise ConfigError(f"venue.latency_file: {p}: line {i}: {ln.strip()[:40]!r} is not a "
                              f"number (or give a CSV with a {SAMPLE_COLUMN!r} column)") from None
    return np.asarray(out, dtype=float)


def latency_model(config: LatencySettings) -> LatencyModel:
    """The model a venue config asks for (``venue.latency``)."""
    if config.latency == "empirical":
        return EmpiricalLatency(load_samples(config.latency_file or ""), config.latency_seed,
                                source=str(config.latency_file))
    return ConstantLatency(config.latency_ms)


def summary(samples_ms: Sequence[float]) -> dict[str, float]:
    """n, mean and quantiles of latency samples (ms), for reports."""
    a = np.asarray(list(samples_ms), dtype=float)
    a = a[np.isfinite(a)]
    if not len(a):
        return {"n": 0}
    q = np.quantile(a, [0.0, 0.5, 0.9, 0.99, 1.0])
    out = {"n": int(len(a)), "mean": float(a.mean())}
    out.update({k: float(v) for k, v in zip(("min", "p50", "p90", "p99", "max"), q, strict=True)})
    return {k: (v if not (isinstance(v, float) and math.isnan(v)) else 0.0) for k, v in out.items()}
