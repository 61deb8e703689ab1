"""The one place components are built: a :class:`KernelSpec` (and a role) in, a Kernel out.

Every mode and topology runs the same components; only the backends and the
clock change, and they change here:

============  =========  ==============  ================  ==========================
role          clock      state           venue             agents
============  =========  ==============  ================  ==========================
ALL (sim)     event      memory          SimVenue          all, intents -> risk
ALL (paper)   wall       memory          SimVenue          all, intents -> risk
ALL (live)    wall       memory          HyperliquidVenue  all, intents -> risk
AGENT         wall|event Redis           none              some, intents -> stream
RISK          wall|event Redis (+memory) BusVenue          none
ROUTER        wall       Redis           HyperliquidVenue  none
============  =========  ==============  ================  ==========================

(``event`` for processes: ``live.clock=event``, replays and parity drills.)
The backtest, ``hlquant paper``/``live`` and each role process of
``live.topology=processes`` call :func:`build_kernel`; nothing else
constructs these components.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from hlquant.agents.account import LocalAccount
from hlquant.agents.base import Agent
from hlquant.agents.blackboard import InMemoryBlackboard, InMemoryHeartbeats
from hlquant.agents.runner import AgentRunner
from hlquant.audit.log import AuditLog
from hlquant.config.spec import KernelSpec
from hlquant.core.assets import AssetSpec
from hlquant.core.clock import Clock, SimClock, WallClock
from hlquant.core.errors import ConfigError
from hlquant.core.events import Event, Fill, FundingPayment, Intent
from hlquant.features.specs import resolve_feature_specs
from hlquant.features.store import InMemoryFeatureStore, StalenessRules
from hlquant.portfolio.portfolio import Portfolio
from hlquant.risk.engine import RiskEngine
from hlquant.router.idempotency import InMemoryIdempotencyStore
from hlquant.router.router import OrderRouter


class Role(StrEnum):
    ALL = "all"  # one process: backtest, paper, live (single)
    AGENT = "agent"
    RISK = "risk"
    ROUTER = "router"
    FEATURES = "features"
    INGEST = "ingest"


@dataclass
class Kernel:
    """The components of one process. Absent ones are None (an agent process has no
    venue; the risk process has no agents)."""

    spec: KernelSpec
    role: Role
    clock: Clock
    audit: AuditLog
    symbols: list[str]
    assets: dict[str, AssetSpec]
    agents: list[Agent] = field(default_factory=list)
    store: Any = None
    blackboard: Any = None
    heartbeats: Any = None
    portfolio: Portfolio | None = None
    venue: Any = None
    idempotency: Any = None
    router: OrderRouter | None = None
    risk: RiskEngine | None = None
    runner: AgentRunner | None = None
    account: Any = None
    marks: dict[str, float] = field(default_factory=dict)  # last price per symbol (ctx.price)
    redis: Any = None
    bus: Any = None
    feature_specs: list[dict] = field(default_factory=list)
    session: str = ""
    fills: list[Fill] = field(default_factory=list)
    funding: list[FundingPayment] = field(default_factory=list)

    def on_venue_event(self, ev: Event) -> None:
        """The router's sink: fills and funding reach the portfolio (and the run's record)."""
        if isinstance(ev, Fill):
            self.portfolio.on_fill(ev)
            self.fills.append(ev)
        elif isinstance(ev, FundingPayment):
            self.portfolio.on_funding(ev)
            self.funding.append(ev)


def _clock(spec: KernelSpec, role: Role) -> Clock:
    if spec.mode == "sim" or (role is not Role.ALL and spec.live.clock == "event"):
        return SimClock(0)
    return WallClock()


def _audit(spec: KernelSpec, role: Role, name: str, out_dir: str | Path | None, session: str,
           redis: Any) -> AuditLog:
    if role is Role.ALL:
        path = Path(out_dir) / "audit" if out_dir is not None else None
        flush = 20_000 if spec.mode == "sim" else spec.live.audit_flush_every
        return AuditLog(path, session, flush)
    from hlquant.storage.writer import audit_mirror

    path = Path(out_dir) / "audit" / name if out_dir is not None else None
    mirror = audit_mirror(redis, spec.live.namespace, name) if spec.live.audit_stream else None
    return AuditLog(path, name, flush_every=100, mirror=mirror)


def exchange_assets(spec: KernelSpec) -> dict[str, AssetSpec]:
    """The traded symbols' rules as the exchange lists them (paper / live)."""
    from hlquant.hyperliquid.info import InfoClient

    url = spec.endpoints().url
    listed = InfoClient(url).assets()
    missing = [s for s in spec.symbols if s not in listed]
    if missing:
        raise ConfigError(f"symbols {missing} are not listed on {url}")
    return {s: listed[s] for s in spec.symbols}


def hyperliquid_venue(spec: KernelSpec, assets: dict[str, AssetSpec], redis: Any = None) -> Any:
    """Signed orders on Hyperliquid (the key from the environment or a file). With ``redis``
    (router replicas) nonces come from one shared monotonic source per signer, so several
    replicas signing for one account never reuse a nonce."""
    from hlquant.hyperliquid.exchange import ExchangeClient
    from hlquant.hyperliquid.info import InfoClient
    from hlquant.hyperliquid.limits import WeightLimiter
    from hlquant.hyperliquid.signing import Signer
    from hlquant.hyperliquid.venue import HyperliquidVenue

    live = spec.live
    if not live.account_address:
        raise ConfigError("live.account_address (the master account) is required")
    ep = spec.endpoints()
    # one IP weight budget for every request of this process (info and exchange), from the
    # config (router.weight_per_min), not the client's own default
    info = InfoClient(ep.url, limiter=WeightLimiter(per_min=spec.router.weight_per_min))
    try:
        signer = Signer.from_env(live.key_env, live.key_file, account_address=live.account_address)
    except KeyError as e:
        raise ConfigError(str(e).strip("'\"")) from None
    nonces = None
    if redis is not None:
        from hlquant.hyperliquid.nonces import RedisNonceSource

        nonces = RedisNonceSource(redis, signer.address, live.namespace)
    # a replica's lost request must expire before its claim on the cloid does, or a replica
    # taking the order over could place it a second time
    expires = max(1_000, live.claim_ttl_ms - 1_000) if redis is not None else None
    ex = ExchangeClient(signer, assets, base_url=ep, limiter=info.limiter, nonces=nonces,
                        expires_after_ms=expires)
    return HyperliquidVenue(info, ex, sorted(assets))


def build_kernel(
    spec: KernelSpec,
    role: Role = Role.ALL,
    *,
    assets: dict[str, AssetSpec] | None = None,
    clock: Clock | None = None,
    venue: Any = None,
    out_dir: str | Path | None = None,
    session: str | None = None,
    redis: Any = None,
    agent_names: list[str] | None = None,
    audit_flush_every: int | None = None,
    component: str | None = None,
    store: Any = None,
) -> Kernel:
    """Build the components ``role`` needs for ``spec`` (see the module table).

    ``assets`` default: the exchange's listing (paper/live) — a backtest passes the
    data's. ``venue`` overrides the mode's venue (tests, drills). ``redis``: the shared
    client of the multi-process roles. ``agent_names``: the agents an AGENT process runs.
    ``component``: the name its audit log and audit stream carry (one per replica).
    ``store`` overrides the single process's feature store (the backtest's columnar one).
    """
    session = session or uuid.uuid4().hex[:12]
    clock = clock or _clock(spec, role)
    symbols = spec.symbols
    if assets is None:
        assets = exchange_assets(spec)
    name = component or (role.value if role is not Role.AGENT else f"agent-{'+'.join(agent_names or [])}")
    audit = _audit(spec, role, name, out_dir, session, redis)
    if audit_flush_every is not None:
        audit.flush_every = audit_flush_every
    k = Kernel(spec, role, clock, audit, symbols, dict(assets), session=session, redis=redis)
    if role is Role.ALL:
        _build_single(k, venue, store)
    elif role is Role.AGENT:
        _build_agent_process(k, agent_names or [])
    elif role is Role.RISK:
        _build_risk_process(k)
    elif role is Role.ROUTER:
        from hlquant.bus.redis_state import RedisIdempotencyStore

        k.venue = venue if venue is not None else hyperliquid_venue(spec, k.assets, redis)
        k.idempotency = RedisIdempotencyStore(redis, spec.live.namespace)
    elif role is Role.FEATURES:
        from hlquant.bus.redis_state import RedisFeatureStore

        k.store = RedisFeatureStore(redis, spec.staleness, spec.live.namespace)
        k.feature_specs, _ = resolve_feature_specs(spec.agents)
    return k


def _trading_core(k: Kernel, venue: Any, idempotency: Any, blackboard: Any, heartbeats: Any,
                  router_cfg: Any) -> None:
    """Portfolio, router and risk engine over a venue: shared by ALL and RISK."""
    spec = k.spec
    k.portfolio = Portfolio(spec.venue.initial_cash)
    k.marks = k.portfolio.marks
    k.venue = venue
    k.idempotency = idempotency
    k.blackboard, k.heartbeats = blackboard, heartbeats
    dms = spec.live.dead_mans_switch_ms if spec.mode == "live" and k.role is Role.ALL else 0
    k.router = OrderRouter(venue, idempotency, k.clock, k.audit, router_cfg, dead_mans_switch_ms=dms)
    k.router.sinks.append(k.on_venue_event)
    k.risk = RiskEngine(spec.risk, blackboard, heartbeats, k.portfolio, k.router, k.audit, k.clock)
    for a in spec.agents:
        k.risk.register_agent(a.name)


def _build_single(k: Kernel, venue: Any, store: Any = None) -> None:
    spec = k.spec
    if venue is None:
        if spec.mode == "live":
            venue = hyperliquid_venue(spec, k.assets)
        else:
            from hlquant.venues.sim import SimVenue

            venue = SimVenue(k.assets, spec.venue, k.clock)
    k.store = store if store is not None else InMemoryFeatureStore(StalenessRules(spec.staleness))
    _trading_core(k, venue, InMemoryIdempotencyStore(), InMemoryBlackboard(), InMemoryHeartbeats(),
                  spec.router)
    k.agents = list(spec.agents)
    k.feature_specs, aliases = resolve_feature_specs(k.agents)
    k.account = LocalAccount(k.portfolio, k.router.open_orders_view)
    marks = k.portfolio.marks
    risk = k.risk
    k.runner = AgentRunner(
        k.agents, k.blackboard, k.heartbeats, k.store, k.account,
        lambda s: marks.get(s, float("nan")), risk.on_intent, k.audit, aliases,
        on_error=spec.on_error, on_quarantine=lambda a: risk.retire(a, reason="quarantined"),
        declared=frozenset(s["name"] for s in k.feature_specs),
    )


def _build_agent_process(k: Kernel, names: list[str]) -> None:
    from hlquant.bus.redis_state import (
        RedisAccountView,
        RedisBlackboard,
        RedisFeatureStore,
        RedisHeartbeats,
        RedisStreamBus,
    )

    spec, live, r = k.spec, k.spec.live, k.redis
    k.agents = [a for a in spec.agents if a.name in names]
    missing = sorted(set(names) - {a.name for a in k.agents})
    if missing or not names:
        raise ConfigError(f"no agent named {missing or names} in strategy {spec.name!r}; "
                          f"agents: {[a.name for a in spec.agents]}")
    k.symbols = sorted({s for a in k.agents for s in a.symbols})
    k.store = RedisFeatureStore(r, spec.staleness, live.namespace)
    k.blackboard, k.heartbeats = RedisBlackboard(r, live.namespace), RedisHeartbeats(r, live.namespace)
    k.account = RedisAccountView(r, live.namespace, live.account_max_age_ms)
    k.bus = RedisStreamBus(r, live.namespace, maxlen=live.stream_maxlen)
    all_specs, aliases = resolve_feature_specs(spec.agents)  # names as the stream processors write them
    k.feature_specs = all_specs
    bus, hb = k.bus, k.heartbeats
    prices = k.marks

    def publish(it: Intent) -> None:
        bus.publish(f"Intent:{{{it.symbol}}}", it)

    k.runner = AgentRunner(
        k.agents, k.blackboard, hb, k.store, k.account, lambda s: prices.get(s, float("nan")),
        publish, k.audit, aliases, on_error=spec.on_error, on_quarantine=hb.expire,
        declared=frozenset(s["name"] for s in all_specs),
    )


def _build_risk_process(k: Kernel) -> None:
    from hlquant.bus.redis_state import RedisBlackboard, RedisHeartbeats, RedisStreamBus
    from hlquant.venues.bus import BusVenue

    spec, live, r = k.spec, k.spec.live, k.redis
    k.bus = RedisStreamBus(r, live.namespace, maxlen=live.stream_maxlen)
    venue = BusVenue(k.bus, k.assets, k.clock)
    # the exchange's weight budget is enforced where the exchange is called (the replicas'
    # limiter); here orders only go onto a stream, so nothing may wait in this queue
    router_cfg = dataclasses.replace(spec.router, weight_per_min=1e12)
    _trading_core(k, venue, InMemoryIdempotencyStore(), RedisBlackboard(r, live.namespace),
                  RedisHeartbeats(r, live.namespace), router_cfg)
