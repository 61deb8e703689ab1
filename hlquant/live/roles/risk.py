"""Risk process: the one gate, owner of the portfolio and of the account read model.

It consumes the market streams (prices for the limits, marks for equity),
the agents' ``Intent:{SYM}`` streams and the replicas' ``Exec:{SYM}``
outcomes through one consumer group, and the exchange's user channel for
fills and funding. Decisions go through the kernel's risk engine and router
exactly as in one process; orders leave as stream entries (``BusVenue``).
After every change, and at least every ``heartbeat_check_s``, it publishes
the account (positions, entry prices, equity, open orders) for the agents.

Market streams are subscribed before the intent streams, so when a price and
an intent wait together the price is applied first.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from hlquant.bus.redis_state import RedisAccountPublisher, RedisStreamBus
from hlquant.core.events import Event, Fill, FundingPayment, Intent
from hlquant.hyperliquid.ws import user_subscriptions
from hlquant.kernel import MarketHandler, Role, build_kernel
from hlquant.live.roles.common import (
    MARKET_KINDS,
    Outage,
    UserFeed,
    market_topic,
    role_spec,
    stop_on_signals,
)

log = logging.getLogger(__name__)


def _exchange_positions(info: Any, user: str) -> dict[str, float]:
    return {c: p.size for c, p in info.clearinghouse_state(user).positions.items() if p.size}


def run_risk(cfg: Any, out_dir: str | Path | None = None, stop: threading.Event | None = None) -> dict[str, Any]:
    spec, r = role_spec(cfg)
    live = spec.live
    k = build_kernel(spec, Role.RISK, redis=r, out_dir=out_dir)
    h = MarketHandler(k, heartbeat_check_ms=int(live.heartbeat_check_s * 1000))
    venue, risk, router, hb = k.venue, k.risk, k.router, k.heartbeats
    publisher = RedisAccountPublisher(r, live.namespace)
    every_ms = int(live.heartbeat_check_s * 1000)
    changed = [True]
    last_pub = [-(2**62)]

    def sync(force: bool = False) -> None:
        """Publish the account read model when it changed (or is due). The bus calls it
        once per batch, before the batch is acknowledged, so nobody sees a drained stream
        while the view it produced is not out yet."""
        k.audit.sync()  # decisions reach the audit stream before their entry is acknowledged
        now = k.clock.now_ms()
        if force or changed[0] or router.queued or now - last_pub[0] >= every_ms:
            publisher.publish(now, k.portfolio, router.open_orders_view(), len(k.fills), router.queued)
            last_pub[0], changed[0] = now, False

    def on_market(_topic: str, ev: Event) -> None:
        n = len(k.fills) + len(router.open)
        h.on_event(ev)
        if len(k.fills) + len(router.open) != n:
            changed[0] = True

    def on_exec(topic: str, ev: Event) -> None:
        venue.on_exec(topic, ev)
        changed[0] = True

    def on_intent(_topic: str, it: Event) -> None:
        assert isinstance(it, Intent)
        k.clock.observe(it.ts_exch)
        if it.agent in risk.dead and hb.alive(it.agent, k.clock.now_ms()):
            risk.revive(it.agent)  # restarted by the supervisor and beating again
        risk.on_intent(it)
        if router.has_work:
            router.flush()
        changed[0] = True

    seen_diff: dict[str, tuple[float, float]] = {}

    def reconcile_with(info: Any, user: str) -> dict:
        """Positions vs the exchange. A fill on its way looks like a mismatch for a moment,
        so a mismatch is audited at once but corrected only when the next check, one
        reconcile period later, finds the same one."""
        from hlquant.core.events import PositionCorrected, PositionMismatch

        if any(o.status.name in ("PENDING", "UNKNOWN") for o in router.open.values()) or router.has_work:
            return {}
        try:
            theirs = _exchange_positions(info, user)
        except Exception as e:  # the exchange could not be asked: next time
            log.warning("reconcile failed: %s", e)
            return {}
        diff = k.portfolio.reconcile(theirs, 1e-6)
        now = k.clock.now_ms()
        if diff:
            k.audit.record(PositionMismatch(now, now, ",".join(sorted(diff)), {s: list(v) for s, v in diff.items()}))
        for sym, (mine, ex) in diff.items():
            if seen_diff.get(sym) == (mine, ex):
                k.portfolio.set_position(sym, ex, k.portfolio.marks.get(sym, 0.0))
                k.audit.record(PositionCorrected(now, now, sym, mine, ex))
        seen_diff.clear()
        seen_diff.update(diff)
        return diff

    bus = RedisStreamBus(r, live.namespace, group="risk", consumer="risk-0", maxlen=live.stream_maxlen,
                         before_ack=sync)
    topics = [(market_topic(kind, s), on_market) for s in k.symbols for kind in MARKET_KINDS]
    topics += [(f"Exec:{{{s}}}", on_exec) for s in k.symbols]
    topics += [(f"Intent:{{{s}}}", on_intent) for s in k.symbols]
    for topic, handler in topics:
        bus.subscribe(topic, handler)
    info = user = None
    if live.account_address:  # a (re)started risk process starts from the exchange's state, not flat
        from hlquant.hyperliquid.info import InfoClient
        from hlquant.live.reconcile import adopt_exchange_state, resolve_unsent

        info = InfoClient(spec.endpoints().url)
        adopted = adopt_exchange_state(k, info, live.account_address)
        resolve_unsent(k, r, live.namespace, k.audit.session, info, live.account_address)
        user = UserFeed(spec, user_subscriptions(live.account_address), seen_fills=adopted["fills"])
    stop = stop_on_signals(stop)
    wall = live.clock == "wall"
    if wall:
        h.start(k.clock.now_ms())
    log.info("risk on %s: consuming market, intent and exec streams", k.symbols)
    last_rec = time.monotonic()
    outage = Outage("risk", stop)

    def step() -> None:
        nonlocal last_rec
        if user is not None:
            for ev in user.drain():
                if isinstance(ev, (Fill, FundingPayment)):
                    venue.on_fill(ev)
                    changed[0] = True
        n = bus.poll(block_ms=20, count=200)
        if venue.release_orphans():
            changed[0] = True
        if info is not None and live.reconcile_s and time.monotonic() - last_rec > live.reconcile_s:
            last_rec = time.monotonic()
            if reconcile_with(info, live.account_address):
                changed[0] = True
        if wall:
            h.tick()
        elif router.has_work:
            router.flush()
        sync()
        if n == 0 and user is not None and not user.connected:
            time.sleep(0.01)

    try:
        outage.run(step)
    finally:
        try:
            router.drop_queued("shutdown")  # reported CANCELED, never silently lost
            if live.cancel_on_shutdown:
                router.cancel_all("shutdown")
                router.flush()
        finally:
            k.audit.close()
            if user is not None:
                user.close()
    return {"risk": dict(risk.counts), "router": vars(router.stats),
            "portfolio": {s: p.size for s, p in k.portfolio.positions.items() if p.size},
            "feed": dict(user.feed.counters) if user is not None else {}}
