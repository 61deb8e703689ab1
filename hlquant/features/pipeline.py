"""Stream processors: features over columnar history, or event by event.

``compute_columnar`` (backtests) runs each kernel per symbol over that
symbol's rows of the input stream; ``FeatureProcessor`` (live and paper)
steps the same kernels on each event and writes the FeatureStore. Both give
the same numbers (tests/features/test_parity.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hlquant.core.events import (
    BBO,
    BookSnapshot,
    Candle,
    Event,
    FundingRate,
    MarketKind,
    MarkPrice,
    Trade,
)
from hlquant.features.kernels import Feature, FeatureSpec, parse_specs
from hlquant.features.store import FeatureStore

_STREAM_KIND = {
    "candle": MarketKind.CANDLE, "trade": MarketKind.TRADE, "l2": MarketKind.L2,
    "bbo": MarketKind.BBO, "funding": MarketKind.FUNDING, "mark": MarketKind.MARK,
}
_SCALAR_FIELD = {
    "candle.close": "close", "candle.open": "open", "candle.high": "high", "candle.low": "low",
    "candle.volume": "volume", "trade.px": "px", "trade.sz": "sz", "funding.rate": "rate",
    "funding.premium": "premium", "mark.px": "mark_px",
}


@dataclass(frozen=True)
class FeatureColumn:
    """Feature values aligned with the rows of the source stream's array."""

    kind: MarketKind
    values: np.ndarray


def _inputs(spec: FeatureSpec, a: np.ndarray) -> tuple[np.ndarray, ...]:
    if spec.input in _SCALAR_FIELD:
        return (a[_SCALAR_FIELD[spec.input]],)
    if spec.input == "bbo.mid":
        return ((a["bid_px"] + a["ask_px"]) / 2.0,)
    if spec.input == "trade":
        return a["px"], a["sz"]
    if spec.input == "candle":
        return a["close"], a["volume"]
    if spec.input == "l2":
        return a["bid_sz"], a["ask_sz"]
    if spec.input == "bbo":
        return a["bid_sz"][:, None], a["ask_sz"][:, None]
    raise ValueError(f"unsupported input {spec.input!r}")


def compute_columnar(
    specs: Sequence[FeatureSpec | Mapping[str, Any]],
    arrays: Mapping[MarketKind, np.ndarray],
    n_symbols: int,
) -> dict[str, FeatureColumn]:
    """All features over whole streams; state is per symbol."""
    specs = parse_specs(specs)
    out: dict[str, FeatureColumn] = {}
    sym_rows: dict[MarketKind, list[np.ndarray]] = {}
    for spec in specs:
        kind = _STREAM_KIND[spec.stream]
        a = arrays.get(kind)
        if a is None or not len(a):
            out[spec.name] = FeatureColumn(kind, np.full(0 if a is None else len(a), np.nan))
            continue
        if kind not in sym_rows:
            order = np.argsort(a["sym"], kind="stable")
            bounds = np.searchsorted(a["sym"][order], np.arange(n_symbols + 1))
            sym_rows[kind] = [order[bounds[s] : bounds[s + 1]] for s in range(n_symbols)]
        xs = _inputs(spec, a)
        vals = np.full(len(a), np.nan)
        f = Feature(spec)
        for rows in sym_rows[kind]:
            if len(rows):
                vals[rows] = f.run(*(x[rows] for x in xs))
        out[spec.name] = FeatureColumn(kind, vals)
    return out


def _event_inputs(ev: Event) -> tuple[str, dict[str, tuple]] | None:
    """(stream, {input: args}) for one event."""
    if isinstance(ev, Candle):
        return "candle", {
            "candle.close": (ev.close,), "candle.open": (ev.open,), "candle.high": (ev.high,),
            "candle.low": (ev.low,), "candle.volume": (ev.volume,), "candle": (ev.close, ev.volume),
        }
    if isinstance(ev, Trade):
        return "trade", {"trade.px": (ev.px,), "trade.sz": (ev.sz,), "trade": (ev.px, ev.sz)}
    if isinstance(ev, BookSnapshot):
        bs = np.array([s for _, s in ev.bids], float)
        as_ = np.array([s for _, s in ev.asks], float)
        return "l2", {"l2": (bs, as_)}
    if isinstance(ev, BBO):
        return "bbo", {
            "bbo.mid": ((ev.bid_px + ev.ask_px) / 2.0,),
            "bbo": (np.array([ev.bid_sz]), np.array([ev.ask_sz])),
        }
    if isinstance(ev, FundingRate):
        return "funding", {"funding.rate": (ev.rate,), "funding.premium": (ev.premium,)}
    if isinstance(ev, MarkPrice):
        return "mark", {"mark.px": (ev.mark_px,)}
    return None


class FeatureProcessor:
    """Incremental features per symbol, written to a FeatureStore on each event."""

    def __init__(self, specs: Sequence[FeatureSpec | Mapping[str, Any]], store: FeatureStore,
                 symbols: Sequence[str]) -> None:
        self.specs = parse_specs(specs)
        self.store = store
        self.by_stream: dict[str, list[FeatureSpec]] = {}
        for s in self.specs:
            self.by_stream.setdefault(s.stream, []).append(s)
        self.features: dict[tuple[str, str], Feature] = {
            (sym, s.name): Feature(s) for sym in symbols for s in self.specs
        }
        self.updates = 0

    def on_event(self, ev: Event) -> int:
        got = _event_inputs(ev)
        if got is None:
            return 0
        stream, inputs = got
        specs = self.by_stream.get(stream)
        sym = getattr(ev, "symbol", "")
        if not specs:
            return 0
        items = []
        for spec in specs:
            f = self.features.get((sym, spec.name))
            if f is None:
                f = self.features[(sym, spec.name)] = Feature(spec)
            items.append((spec.name, f.update(*inputs[spec.input])))
        self.store.put_many(sym, items, ev.ts_exch)
        self.updates += len(items)
        return len(items)
