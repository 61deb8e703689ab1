"""The ``connectors`` config group: a run's data sources, from a list in the config.

``conf/config.yaml`` selects options of ``conf/connectors/`` (``connectors:
[market, ...]``); each option is one named entry with a ``type`` and that type's
parameters::

    connectors:
      market: {type: market}                   # the exchange: `data` in backtests, the WebSocket live
      sentiment: {type: file, path: s.csv, lag_ms: 60000}

Types: ``market`` (exactly one), ``file``, ``http``, ``hyperliquid_ctx``,
``synthetic_sentiment``, or ``package.module:Class`` (your own
``SignalConnector``). A type's parameters are its class's constructor arguments
(their defaults and meaning are in its docstring); an unknown or missing key is
an error naming ``connectors.<name>.<key>``. The same list builds the sources of a
backtest (``history``), a paper or live session and the ingest process of
``live.topology=processes`` (``events``); a connector that cannot serve the mode
(an API without history in a backtest, a series that knows the future live) is
refused when the run starts.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hlquant.config.build import import_object
from hlquant.connectors.base import SignalConnector
from hlquant.connectors.file import FileConnector
from hlquant.connectors.http import HttpPollingConnector
from hlquant.connectors.synthetic import SyntheticSentimentConnector
from hlquant.core.errors import ConfigError
from hlquant.hyperliquid.context import HyperliquidContextConnector

MARKET = "market"
TYPES: dict[str, type[SignalConnector]] = {
    "file": FileConnector,
    "http": HttpPollingConnector,
    "hyperliquid_ctx": HyperliquidContextConnector,
    "synthetic_sentiment": SyntheticSentimentConnector,
}
INJECTED = {"bus", "clock_ms", "cache", "rng", "info", "symbols"}
"""Constructor arguments the builder supplies, never the config."""


@dataclass(frozen=True)
class ConnectorSpec:
    """One entry of ``connectors``: its name (the key), type and parameters."""

    name: str
    type: str
    params: Mapping[str, Any] = field(default_factory=dict)


DEFAULT_CONNECTORS = (ConnectorSpec(MARKET, MARKET),)


def connector_class(spec: ConnectorSpec) -> type[SignalConnector]:
    cls = TYPES.get(spec.type)
    if cls is None:
        if ":" not in spec.type:
            raise ConfigError(f"connectors.{spec.name}.type: unknown type {spec.type!r}; "
                              f"valid: {[MARKET, *TYPES]} or 'package.module:Class'")
        cls = import_object(spec.type)
        if not (isinstance(cls, type) and issubclass(cls, SignalConnector)):
            raise ConfigError(f"connectors.{spec.name}.type: {spec.type} is not a SignalConnector subclass")
    return cls


def _check_params(spec: ConnectorSpec, cls: type) -> None:
    sig = inspect.signature(cls.__init__)
    params = {n: p for n, p in sig.parameters.items()
              if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in INJECTED}
    unknown = sorted(set(spec.params) - set(params))
    if unknown:
        raise ConfigError(f"connectors.{spec.name}: unknown key(s) {unknown}; valid: {sorted(params)}")
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in spec.params]
    if missing:
        raise ConfigError(f"connectors.{spec.name}.{missing[0]} is required (type {spec.type})")
    for k, v in spec.params.items():
        if v == "???":
            raise ConfigError(f"connectors.{spec.name}.{k} is required (type {spec.type})")


def parse_connectors(node: Mapping[str, Any] | None, data: Mapping[str, Any] | None = None
                     ) -> tuple[ConnectorSpec, ...]:
    """The validated specs of a ``connectors`` node (None or empty: the market only).
    ``data``: the ``data`` group, whose ``path`` is the default directory of
    ``hyperliquid_ctx`` history."""
    if not node:
        return DEFAULT_CONNECTORS
    if not isinstance(node, Mapping):
        raise ConfigError(f"connectors must be a mapping of name -> {{type, ...}}, got {type(node).__name__}")
    out = []
    for name, entry in node.items():
        if not isinstance(entry, Mapping) or "type" not in entry:
            raise ConfigError(f"connectors.{name} needs a type ({[MARKET, *TYPES]} or 'module:Class')")
        params = {k: v for k, v in entry.items() if k != "type"}
        spec = ConnectorSpec(str(name), str(entry["type"]), params)
        if spec.type == MARKET:
            if params:
                raise ConfigError(f"connectors.{name}: a market connector has no keys (the `data` group "
                                  f"chooses backtest data, `live.*` the exchange), got {sorted(params)}")
        else:
            cls = connector_class(spec)
            if cls is HyperliquidContextConnector and "path" not in params and data and data.get("path"):
                spec = ConnectorSpec(spec.name, spec.type, {**params, "path": data["path"]})
            _check_params(spec, cls)
        out.append(spec)
    markets = [s.name for s in out if s.type == MARKET]
    if len(markets) != 1:
        raise ConfigError(f"connectors: exactly one connector of type market (the exchange's market data) is "
                          f"needed, got {markets or 'none'}")
    return tuple(out)


def build_connectors(specs: Sequence[ConnectorSpec], mode: str, symbols: Sequence[str],
                     info: Any = None) -> dict[str, SignalConnector]:
    """The extra (non-market) connectors of a run, by name, for ``mode`` (``sim``: each
    must have a history; ``paper``/``live``: a live stream). ``info``: the exchange's
    info client (``hyperliquid_ctx`` polling)."""
    out: dict[str, SignalConnector] = {}
    for spec in specs:
        if spec.type == MARKET:
            continue
        cls = connector_class(spec)
        if mode == "sim" and not cls.historical:
            raise ConfigError(f"connectors.{spec.name} ({spec.type}) has no history, so it cannot run in a "
                              "backtest: record it and replay the file (type: file)")
        if mode != "sim" and not cls.live:
            raise ConfigError(f"connectors.{spec.name} ({spec.type}) has no live stream (it is for backtests): "
                              f"give the series from a real source (type: file or http) in mode={mode}")
        kw: dict[str, Any] = dict(spec.params)
        sig = inspect.signature(cls.__init__).parameters
        if "symbols" in sig:
            kw["symbols"] = list(symbols)
        if "info" in sig and info is not None:
            kw["info"] = info
        try:
            c = cls(**kw)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"connectors.{spec.name}: {e}") from e
        c.name = spec.name
        out[spec.name] = c
    return out


def check_signals(agents: Sequence[Any], provided: Mapping[str, set[str] | None]) -> None:
    """Every signal an agent declares (``Agent.signals``) comes from some connector;
    ``provided``: connector name -> the series it emits (None: not known up front,
    e.g. a file read without ``columns``)."""
    known: set[str] = set()
    unknown_ok = False
    for names in provided.values():
        if names is None:
            unknown_ok = True
        else:
            known |= names
    if unknown_ok:
        return
    for a in agents:
        missing = [s for s in getattr(a, "signals", ()) if s not in known]
        if missing:
            raise ConfigError(f"agent {a.name} reads signal(s) {missing}, which no connector provides "
                              f"(connectors: {sorted(provided) or 'market only'}; series: {sorted(known)})")


def live_sources(spec: Any, mode: str, feed: Any = None, info: Any = None) -> list[SignalConnector]:
    """The extra connectors of a paper/live session or of the ingest process: built for
    ``mode``, checked against the agents' declared signals; a ``hyperliquid_ctx`` with
    ``source: ws`` rides on the market ``feed`` (its activeAssetCtx frames), the rest
    are returned to be iterated (``events``) beside it."""
    sources = build_connectors(spec.connectors, mode, spec.symbols, info=info)
    check_signals(spec.agents, {n: c.signal_names() for n, c in sources.items()})
    out = []
    for c in sources.values():
        if isinstance(c, HyperliquidContextConnector) and c.source == "ws":
            if feed is None:
                raise ConfigError(f"connectors.{c.name}: source ws needs the market feed")
            if feed.ctx_signals is not None:
                raise ConfigError(f"connectors.{c.name}: only one hyperliquid_ctx connector may use source ws")
            feed.ctx_signals = c
        else:
            out.append(c)
    return out
