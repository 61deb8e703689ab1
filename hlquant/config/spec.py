"""The typed description of a run, read from the config tree once.

``KernelSpec.from_config(cfg)`` validates every group (unknown keys and bad
values are errors naming the key) and yields what the kernel builder needs;
the Python API (``Backtest(market, agents, ...)``) fills the same spec
directly. Nothing else reads the config's component groups.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hlquant.agents.base import Agent
from hlquant.config.build import build_agents, make_dataclass, to_dict
from hlquant.config.connectors import DEFAULT_CONNECTORS, ConnectorSpec, parse_connectors
from hlquant.config.live import LiveConfig
from hlquant.core.errors import ConfigError
from hlquant.hyperliquid.endpoints import Endpoints, resolve_endpoints
from hlquant.risk.engine import RiskConfig
from hlquant.router.router import RouterConfig
from hlquant.venues.sim import SimVenueConfig

MODES = ("sim", "paper", "live")
ON_ERROR_BY_MODE = {"sim": "raise", "paper": "quarantine", "live": "quarantine"}
"""What a strategy exception does unless ``agents.on_error`` says otherwise: research
runs stop with one line; paper and live quarantine the agent and go on."""

DEFAULT_STALENESS = {"default": 500, "sentiment*": 300_000}
"""Max age of a feature or signal when read (ms): ``default`` and ``prefix*`` rules
(``features.staleness`` in the config replaces it)."""


def check_params(agent: Agent, where: str) -> None:
    """A numeric parameter whose default is positive (a size, a window, a threshold) must be a
    finite number >= 0, unless the agent lists it in ``signed_params``: ``size_usd=-5`` would
    flip the side of every order, NaN would pass every comparison."""
    for k, d in type(agent).defaults.items():
        if isinstance(d, bool) or not isinstance(d, int | float) or not d > 0 or k in agent.signed_params:
            continue
        v = agent.params.get(k)
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < math.inf:
            raise ConfigError(f"{where}.{k} (agent {agent.name}) must be a finite number >= 0 "
                              f"(its default is {d!r}), got {v!r}")


@dataclass
class KernelSpec:
    """Everything the kernel builder needs to know about a run."""

    agents: list[Agent]
    mode: str = "sim"
    venue: SimVenueConfig = field(default_factory=SimVenueConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    router: RouterConfig = field(default_factory=RouterConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    staleness: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_STALENESS))
    on_error: str | None = None  # None: ON_ERROR_BY_MODE[mode]
    faults: Sequence[tuple[int, str]] = ()
    name: str = "backtest"
    params: Mapping[str, Any] = field(default_factory=dict)
    equity_every_ms: int = 0  # equity curve resolution in event time (0: every bar close)
    connectors: tuple[ConnectorSpec, ...] = DEFAULT_CONNECTORS  # the run's data sources (``connectors``)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.on_error is None:
            self.on_error = ON_ERROR_BY_MODE[self.mode]
        if not isinstance(self.equity_every_ms, int) or self.equity_every_ms < 0:
            raise ConfigError(f"equity_every_ms must be an integer >= 0, got {self.equity_every_ms!r}")
        names = [a.name for a in self.agents]
        if len(set(names)) != len(names):
            raise ConfigError(f"agent names must be unique, got {names}")
        for i, a in enumerate(self.agents):
            check_params(a, f"strategy.agents[{i}].params")
        for k, v in dict(self.staleness).items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < math.inf or v != int(v):
                raise ConfigError(f"features.staleness.{k} must be a whole number of ms >= 0, got {v!r}")
        if not self.venue.initial_cash > 0:  # a run's account; the fake exchange may hold unfunded ones
            raise ConfigError(f"venue.initial_cash must be a positive finite number (USDC) for a run, "
                              f"got {self.venue.initial_cash!r}")
        if self.risk.max_order_notional < self.venue.min_order_value:
            raise ConfigError(f"risk.max_order_notional must be >= venue.min_order_value "
                              f"({self.venue.min_order_value:g}, the exchange's minimum order): every order "
                              f"would be refused; got {self.risk.max_order_notional!r}")

    def endpoints(self) -> Endpoints:
        """The exchange's REST and WebSocket URLs, mainnet derived from them (``live.*``)."""
        return resolve_endpoints(dataclasses.asdict(self.live))

    @property
    def symbols(self) -> list[str]:
        """Symbols the agents trade, sorted."""
        return sorted({s for a in self.agents for s in a.symbols})

    @classmethod
    def from_config(cls, cfg: Any, mode: str | None = None) -> KernelSpec:
        """The spec of a composed config (Hydra DictConfig or plain dict)."""
        c = to_dict(cfg)
        mode = mode or str((c.get("mode") or {}).get("name", "sim"))
        strategy = c.get("strategy") or {}
        agents_cfg = c.get("agents") or {}
        unknown = sorted(set(agents_cfg) - {"on_error"})
        if unknown:
            raise ConfigError(f"agents: unknown key(s) {unknown}; valid: ['on_error']")
        faults = []
        for i, f in enumerate(c.get("faults") or ()):
            try:
                faults.append((int(f["at"]), str(f["agent"])))
            except (KeyError, TypeError, ValueError):
                raise ConfigError(f"faults[{i}] must be {{at: ts_ms, agent: name}}, got {f!r}") from None
        features = c.get("features") or {}
        return cls(
            agents=build_agents(strategy, c.get("strategy_path") or ()),
            mode=mode,
            venue=make_dataclass(SimVenueConfig, c.get("venue") or {}, "venue"),
            risk=make_dataclass(RiskConfig, c.get("risk") or {}, "risk"),
            router=make_dataclass(RouterConfig, c.get("router") or {}, "router"),
            live=make_dataclass(LiveConfig, c.get("live") or {}, "live", drop=()),
            staleness=dict(features.get("staleness") or DEFAULT_STALENESS),
            on_error=agents_cfg.get("on_error"),
            faults=tuple(faults),
            name=str(strategy.get("name", "backtest")),
            params={k: v for k, v in strategy.items() if k not in ("agents", "name")},
            equity_every_ms=c.get("equity_every_ms") or 0,
            connectors=parse_connectors(c.get("connectors"), c.get("data")),
        )
