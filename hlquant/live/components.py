"""Live components as separate processes sharing state through Redis.

    hlquant component agent  agent=NAME [overrides]   features + one agent -> Blackboard + Intent stream
    hlquant component risk   [overrides]              Intent stream -> RiskEngine -> Order stream
    hlquant component router name=R1 [overrides]      Order stream (consumer group) -> exchange
    hlquant component ingest [overrides]              Hyperliquid feed -> market-data streams

Streams (hash-tagged per symbol): ``Intent:{SYM}``, ``OrderRequest:{SYM}`` /
``CancelRequest:{SYM}`` (risk -> routers), ``Exec:{SYM}`` (routers -> risk).

Router replicas are stateless: a replica claims each order's cloid in the
shared idempotency store before sending, records the outcome, and only then
acknowledges the stream entry. A replica killed at any point leaves its entry
pending; a live replica takes it over (XAUTOCLAIM) and, because the entry was
delivered before, asks the exchange for the cloid before sending: an order is
never sent twice. The risk process is the single writer of decisions; it
learns fills from the exchange's user channels and order outcomes from the
Exec streams, and cancels a dead agent's intents and open orders.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from hlquant.agents.runner import AgentRunner
from hlquant.audit.log import AuditLog
from hlquant.backtest.engine import resolve_feature_specs
from hlquant.bus.redis_state import (
    RedisBlackboard,
    RedisFeatureStore,
    RedisHeartbeats,
    RedisIdempotencyStore,
    RedisStreamBus,
)
from hlquant.config.build import build_agents, make_dataclass, to_dict
from hlquant.core.assets import AssetSpec
from hlquant.core.clock import WallClock
from hlquant.core.errors import ConfigError
from hlquant.core.events import (
    BBO,
    BookSnapshot,
    CancelAck,
    CancelRequest,
    Candle,
    Event,
    Fill,
    FundingPayment,
    Intent,
    LeverageRequest,
    OrderAck,
    OrderRequest,
    OrderStatus,
    Trade,
)
from hlquant.features.kernels import parse_specs
from hlquant.features.pipeline import FeatureProcessor
from hlquant.hyperliquid.info import InfoClient
from hlquant.hyperliquid.ws import HyperliquidFeed, market_subscriptions, user_subscriptions
from hlquant.live.session import endpoints
from hlquant.portfolio.portfolio import Portfolio
from hlquant.risk.engine import RiskConfig, RiskEngine
from hlquant.router.idempotency import InMemoryIdempotencyStore
from hlquant.router.router import OrderRouter, RouterConfig

log = logging.getLogger(__name__)
_TRIGGER = {Candle: "candle", Trade: "trade", BookSnapshot: "l2"}


def redis_client(live: dict[str, Any]) -> Any:
    url = live.get("redis_url") or "redis://127.0.0.1:6379/0"
    if live.get("redis_cluster"):
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(url)
    return redis.Redis.from_url(url)


def _symbols(cfg: dict[str, Any]) -> list[str]:
    return sorted({s for a in build_agents(cfg["strategy"]) for s in a.symbols})


def _price_of(ev: Event) -> float | None:
    if isinstance(ev, Trade):
        return ev.px
    if isinstance(ev, Candle):
        return ev.close
    if isinstance(ev, BookSnapshot) and ev.bids and ev.asks:
        return (ev.bids[0][0] + ev.asks[0][0]) / 2
    if isinstance(ev, BBO):
        return (ev.bid_px + ev.ask_px) / 2
    return None


def _audit(out_dir: str | Path | None, name: str, client: Any = None, namespace: str = "hlq") -> AuditLog:
    """Each component's own audit log; with ``live.audit_stream`` every batch is also put on
    ``<ns>:Audit:{name}`` for the storage writer (PostgreSQL / ClickHouse)."""
    from hlquant.storage.writer import audit_mirror

    path = Path(out_dir) / "audit" / name if out_dir else None
    mirror = audit_mirror(client, namespace, name) if client is not None else None
    return AuditLog(path, name, flush_every=100, mirror=mirror)


class BusVenue:
    """The Venue the risk process's router sees: orders and cancels become stream
    entries for the router replicas; outcomes come back from the Exec streams
    (``on_exec``) and fills from the exchange's user channel (``on_fill``)."""

    name = "bus"

    def __init__(self, bus: RedisStreamBus, assets: dict[str, AssetSpec]) -> None:
        self.bus = bus
        self._assets = dict(assets)
        self._listeners: list = []
        self.cloid_by_oid: dict[int, str] = {}
        self._acks: dict[str, OrderAck] = {}
        self._pos: dict[str, float] = {}

    def assets(self) -> dict[str, AssetSpec]:
        return dict(self._assets)

    def add_listener(self, listener) -> None:
        self._listeners.append(listener)

    def _emit(self, ev: Event) -> None:
        for cb in self._listeners:
            cb(ev)

    def submit(self, orders: Sequence[OrderRequest]) -> list[OrderAck]:
        self.bus.publish_many([(f"OrderRequest:{{{o.symbol}}}", o) for o in orders])
        return [OrderAck(o.ts_exch, o.ts_recv, o.cloid, o.symbol, OrderStatus.PENDING) for o in orders]

    def cancel(self, cancels: Sequence[CancelRequest]) -> list[CancelAck]:
        self.bus.publish_many([(f"CancelRequest:{{{c.symbol}}}", c) for c in cancels])
        return [CancelAck(c.ts_exch, c.ts_recv, c.symbol, c.cloid, c.oid, False, "pending", c.reason)
                for c in cancels]

    def on_exec(self, topic: str, ev: Event) -> None:
        if isinstance(ev, OrderAck):
            if ev.oid and ev.cloid:
                self.cloid_by_oid[ev.oid] = ev.cloid
            self._acks[ev.cloid] = ev
        elif isinstance(ev, CancelAck) and ev.ok and ev.cloid in self._acks:
            a = self._acks[ev.cloid]
            self._acks[ev.cloid] = OrderAck(ev.ts_exch, ev.ts_recv, a.cloid, a.symbol, OrderStatus.CANCELED, a.oid,
                                            a.filled_sz, a.avg_px)
        self._emit(ev)

    def on_fill(self, ev: Event) -> None:
        if isinstance(ev, Fill):
            if not ev.cloid:
                ev.cloid = self.cloid_by_oid.get(ev.oid, "")
            self._pos[ev.symbol] = self._pos.get(ev.symbol, 0.0) + ev.sz * int(ev.side)
        self._emit(ev)

    def modify(self, cloid: str, order: OrderRequest) -> OrderAck:
        """The edit goes to the replicas on ``Modify:{SYM}``; its outcome returns on Exec."""
        self.bus.publish(f"Modify:{{{order.symbol}}}", order if order.cloid == cloid else OrderRequest(
            order.ts_exch, order.ts_recv, cloid, order.intent_id, order.agent, order.symbol, order.side,
            order.size, order.px, order.tif, order.reduce_only, order.trigger_px, order.tpsl))
        return OrderAck(order.ts_exch, order.ts_recv, cloid, order.symbol, OrderStatus.PENDING)

    def order_status(self, cloid: str) -> OrderAck | None:
        """The last outcome the replicas reported for ``cloid`` (None before any)."""
        return self._acks.get(cloid)

    def open_orders(self) -> list[OrderAck]:
        return [a for a in self._acks.values() if a.status == OrderStatus.OPEN]

    def positions(self) -> dict[str, float]:
        """Positions implied by the fills received from the exchange's user channel."""
        return {s: q for s, q in self._pos.items() if abs(q) > 1e-12}

    def schedule_cancel(self, at_ms: int | None) -> None:
        """The router replicas keep the exchange's dead man's switch armed."""

    def set_leverage(self, symbol: str, leverage: int, cross: bool = True) -> None:
        now = int(time.time() * 1000)
        self.bus.publish(f"LeverageRequest:{{{symbol}}}", LeverageRequest(now, now, symbol, int(leverage), cross))


def _stop_event(handle_signals: bool) -> asyncio.Event:
    stop = asyncio.Event()
    if handle_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    return stop


# ---------------------------------------------------------------------------- agent
async def run_agent(cfg: Any, agent_name: str, out_dir: str | Path | None = None,
                    stop: asyncio.Event | None = None, handle_signals: bool = False) -> dict[str, Any]:
    c = to_dict(cfg)
    live = c.get("live") or {}
    ns = live.get("namespace", "hlq")
    url, ws_url = endpoints(live)
    agents = [a for a in build_agents(c["strategy"]) if a.name == agent_name]
    if not agents:
        raise ConfigError(f"no agent named {agent_name!r} in strategy {c['strategy'].get('name')}")
    r = redis_client(live)
    clock = WallClock()
    audit = _audit(out_dir, f"agent-{agent_name}", r if live.get("audit_stream") else None, ns)
    store = RedisFeatureStore(r, (c.get("features") or {}).get("staleness"), ns)
    bb, hb = RedisBlackboard(r, ns), RedisHeartbeats(r, ns)
    bus = RedisStreamBus(r, ns, maxlen=int(live.get("stream_maxlen", 100_000)))
    symbols = sorted({s for a in agents for s in a.symbols})
    specs, aliases = resolve_feature_specs(agents)
    features = FeatureProcessor(parse_specs(specs), store, symbols) if specs else None
    prices: dict[str, float] = {}

    def publish_intent(it: Intent) -> None:
        bus.publish(f"Intent:{{{it.symbol}}}", it)

    runner = AgentRunner(agents, bb, hb, store, Portfolio(0.0), lambda s: prices.get(s, float("nan")),
                         publish_intent, audit, aliases)
    feed = HyperliquidFeed(ws_url, market_subscriptions(symbols), info=InfoClient(url))
    stop = stop or _stop_event(handle_signals)
    runner.start(clock.now_ms())

    async def beats() -> None:
        while not stop.is_set():
            runner.heartbeat(clock.now_ms())
            await asyncio.sleep(min(a.config.heartbeat_ms for a in agents) / 1000.0)

    beat_task = asyncio.create_task(beats())
    try:
        async for ev in feed.events(stop):
            px = _price_of(ev)
            sym = getattr(ev, "symbol", "")
            if px is not None:
                prices[sym] = px
            if features is not None:
                features.on_event(ev)
            kind = _TRIGGER.get(type(ev))
            if kind is not None:
                runner.on_trigger(kind, sym, clock.now_ms())
    finally:
        beat_task.cancel()
        audit.close()
    return {"agent": agent_name, "intents": dict(runner.counts), "feed": dict(feed.counters)}


# ---------------------------------------------------------------------------- risk
async def run_risk(cfg: Any, out_dir: str | Path | None = None, stop: asyncio.Event | None = None,
                   handle_signals: bool = False) -> dict[str, Any]:
    c = to_dict(cfg)
    live = c.get("live") or {}
    ns = live.get("namespace", "hlq")
    url, ws_url = endpoints(live)
    symbols = _symbols(c)
    r = redis_client(live)
    clock = WallClock()
    audit = _audit(out_dir, "risk", r if live.get("audit_stream") else None, ns)
    info = InfoClient(url)
    assets = {s: a for s, a in info.assets().items() if s in symbols}
    out_bus = RedisStreamBus(r, ns, maxlen=int(live.get("stream_maxlen", 100_000)))
    venue = BusVenue(out_bus, assets)
    portfolio = Portfolio(float((c.get("venue") or {}).get("initial_cash", 100_000.0)))
    # the exchange's weight budget is enforced where the exchange is called (the replicas'
    # limiter); here orders only go onto a stream, so nothing may wait in this queue
    router_cfg = dataclasses.replace(make_dataclass(RouterConfig, c.get("router", {}), "router"),
                                     weight_per_min=1e12)
    router = OrderRouter(venue, InMemoryIdempotencyStore(), clock, audit, router_cfg)
    bb, hb = RedisBlackboard(r, ns), RedisHeartbeats(r, ns)
    risk = RiskEngine(make_dataclass(RiskConfig, c.get("risk", {}), "risk"), bb, hb, portfolio, router,
                      audit, clock)
    for a in build_agents(c["strategy"]):
        risk.register_agent(a.name)

    def sink(ev: Event) -> None:
        if isinstance(ev, Fill):
            portfolio.on_fill(ev)
        elif isinstance(ev, FundingPayment):
            portfolio.on_funding(ev)

    router.sinks.append(sink)
    in_bus = RedisStreamBus(r, ns, group="risk", consumer="risk-0")
    for s in symbols:
        in_bus.subscribe(f"Intent:{{{s}}}", lambda _t, it: _on_intent(risk, hb, it, clock))
    exec_bus = RedisStreamBus(r, ns, group="risk-exec", consumer="risk-0")
    for s in symbols:
        exec_bus.subscribe(f"Exec:{{{s}}}", venue.on_exec)
    master = live.get("account_address")
    subs = market_subscriptions(symbols, candle_interval=None, l2=True, trades=True, ctx=True)
    if master:
        subs += user_subscriptions(master)
    feed = HyperliquidFeed(ws_url, subs, info=info)
    stop = stop or _stop_event(handle_signals)
    hb_every = float(live.get("heartbeat_check_s", 1.0))

    async def consume() -> None:
        try:
            await _consume()
        except Exception:
            log.exception("risk consumer failed: stopping the risk process")
            stop.set()
            raise

    async def _consume() -> None:
        last_hb = 0.0
        while not stop.is_set():
            n = await asyncio.to_thread(in_bus.poll, 20, 200)
            n += await asyncio.to_thread(exec_bus.poll, 0, 500)
            now = time.monotonic()
            if now - last_hb >= hb_every:
                lost = risk.check_heartbeats(clock.now_ms())
                for ev in lost:
                    log.warning("agent %s heartbeat lost: cancelled %d intents, %d orders",
                                ev.agent, len(ev.cancelled_intents), len(ev.cancelled_orders))
                for a in list(risk.dead):
                    if hb.alive(a, clock.now_ms()):
                        risk.revive(a)
                last_hb = now
            if router.has_work:
                router.flush()
            if n == 0:
                await asyncio.sleep(0.005)

    consumer = asyncio.create_task(consume())
    try:
        async for ev in feed.events(stop):
            if isinstance(ev, (Fill, FundingPayment)):
                venue.on_fill(ev)
                continue
            if isinstance(ev, OrderAck):
                continue  # outcomes arrive from the router replicas' Exec stream
            px = _price_of(ev)
            if px is not None:
                portfolio.mark(ev.symbol, px)
                risk.on_price(ev.symbol, px, clock.now_ms())
            if router.has_work:
                router.flush()
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(consumer, 5)
        if live.get("cancel_on_shutdown", True):
            router.cancel_all("shutdown")
            router.flush()
        audit.close()
    return {"risk": dict(risk.counts), "router": vars(router.stats), "portfolio": {
        s: p.size for s, p in portfolio.positions.items() if p.size}, "feed": dict(feed.counters)}


def _on_intent(risk: RiskEngine, hb: RedisHeartbeats, it: Intent, clock: WallClock) -> None:
    if it.agent in risk.dead and hb.alive(it.agent, clock.now_ms()):
        risk.revive(it.agent)
    risk.on_intent(it)


# ---------------------------------------------------------------------------- router replica
class RouterReplica:
    """One stateless router replica (see module docstring)."""

    def __init__(self, cfg: Any, name: str, out_dir: str | Path | None = None) -> None:
        from hlquant.hyperliquid.exchange import ExchangeClient
        from hlquant.hyperliquid.signing import Signer
        from hlquant.hyperliquid.venue import HyperliquidVenue

        c = to_dict(cfg)
        live = c.get("live") or {}
        self.ns = live.get("namespace", "hlq")
        url, _ = endpoints(live)
        self.symbols = _symbols(c)
        self.r = redis_client(live)
        self.name = name
        info = InfoClient(url)
        signer = Signer.from_env(live.get("key_env", "HLQUANT_PRIVATE_KEY"), live.get("key_file"),
                                 account_address=live.get("account_address"))
        assets = {s: a for s, a in info.assets().items() if s in self.symbols}
        self.venue = HyperliquidVenue(info, ExchangeClient(signer, assets, url, limiter=info.limiter),
                                      self.symbols)
        self.idem = RedisIdempotencyStore(self.r, self.ns)
        self.out = RedisStreamBus(self.r, self.ns)
        self.bus = RedisStreamBus(self.r, self.ns, group="routers", consumer=name)
        for s in self.symbols:
            self.bus.subscribe(f"OrderRequest:{{{s}}}", self.on_order)
            self.bus.subscribe(f"CancelRequest:{{{s}}}", self.on_cancel)
            self.bus.subscribe(f"Modify:{{{s}}}", self.on_modify)
            self.bus.subscribe(f"LeverageRequest:{{{s}}}", self.on_leverage)
        self.audit = _audit(out_dir, f"router-{name}", self.r if live.get("audit_stream") else None, self.ns)
        self.claim_ttl_ms = int(live.get("claim_ttl_ms", 5_000))
        self.dms_ms = int(live.get("dead_mans_switch_ms", 60_000))
        self.counters = {"sent": 0, "skipped_done": 0, "found_on_exchange": 0, "deferred": 0, "cancels": 0}
        self._dms_until = 0

    def _exec(self, ev: Event) -> None:
        self.audit.record(ev)
        self.out.publish(f"Exec:{{{ev.symbol}}}", ev)

    def on_order(self, _topic: str, req: Event) -> None:
        assert isinstance(req, OrderRequest)
        now = int(time.time() * 1000)
        if self.idem.state(req.cloid):
            self.counters["skipped_done"] += 1  # another replica finished it
            return
        if not self.idem.claim(req.cloid, self.name, self.claim_ttl_ms, now):
            self.counters["deferred"] += 1
            raise RuntimeError(f"{req.cloid} claimed by {self.idem.owner(req.cloid, now)}: retry later")
        if self.bus.redelivery:
            ack = self.venue.order_status(req.cloid)  # a dead replica may have sent it already
            if ack is not None:
                self.counters["found_on_exchange"] += 1
                self.idem.mark(req.cloid, f"{ack.status.name}:{ack.oid}")
                self._exec(ack)
                return
        self.audit.record(req)
        ack = self.venue.submit([req])[0]
        self.idem.mark(req.cloid, f"{ack.status.name}:{ack.oid}")
        self.counters["sent"] += 1
        self._exec(ack)

    def on_cancel(self, _topic: str, c: Event) -> None:
        assert isinstance(c, CancelRequest)
        self.audit.record(c)
        self.counters["cancels"] += 1
        for ack in self.venue.cancel([c]):
            self._exec(ack)

    def on_modify(self, _topic: str, req: Event) -> None:
        assert isinstance(req, OrderRequest)
        self.audit.record_dict({"kind": "ModifyRequest", "ts_exch": req.ts_exch, "ts_recv": req.ts_recv,
                                "cloid": req.cloid, "agent": req.agent, "symbol": req.symbol,
                                "px": req.px, "size": req.size})
        self._exec(self.venue.modify(req.cloid, req))

    def on_leverage(self, _topic: str, ev: Event) -> None:
        assert isinstance(ev, LeverageRequest)
        self.audit.record(ev)
        self.venue.set_leverage(ev.symbol, ev.leverage, ev.cross)

    def keep_switch_armed(self) -> None:
        now = int(time.time() * 1000)
        if self.dms_ms and now + self.dms_ms // 2 >= self._dms_until:
            self._dms_until = now + self.dms_ms
            self.venue.schedule_cancel(self._dms_until)

    def run(self, stop_flag: list[bool], claim_idle_ms: int = 2_000) -> dict[str, Any]:
        last_claim = 0.0
        while not stop_flag[0]:
            try:
                self.bus.poll(block_ms=50, count=100)
            except RuntimeError as e:  # an entry claimed elsewhere: left pending, retried later
                log.info("%s", e)
            now = time.monotonic()
            if now - last_claim > claim_idle_ms / 2000.0:
                try:
                    self.bus.claim_stale(min_idle_ms=claim_idle_ms)
                except RuntimeError as e:
                    log.info("%s", e)
                last_claim = now
                self.keep_switch_armed()
        self.audit.close()
        return dict(self.counters)


def run_router(cfg: Any, name: str, out_dir: str | Path | None = None) -> dict[str, Any]:
    rep = RouterReplica(cfg, name, out_dir)
    stop = [False]

    def on_signal(*_a: Any) -> None:
        stop[0] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("router replica %s (pid %d) consuming order streams for %s", name, os.getpid(), rep.symbols)
    return rep.run(stop)


# ---------------------------------------------------------------------------- ingest
async def run_ingest(cfg: Any, stop: asyncio.Event | None = None, handle_signals: bool = False) -> dict[str, Any]:
    """Market data from Hyperliquid onto the Redis streams (consumed by storage writers)."""
    c = to_dict(cfg)
    live = c.get("live") or {}
    url, ws_url = endpoints(live)
    bus = RedisStreamBus(redis_client(live), live.get("namespace", "hlq"),
                         maxlen=int(live.get("stream_maxlen", 100_000)))
    feed = HyperliquidFeed(ws_url, market_subscriptions(_symbols(c)), info=InfoClient(url), bus=bus)
    stop = stop or _stop_event(handle_signals)
    n = await feed.run(stop=stop)
    return {"events": n, "feed": dict(feed.counters)}
