"""Router replica: order streams in, signed orders out, each order exactly once.

Replicas are stateless: a replica claims each order's cloid in the shared
idempotency store before sending, records the outcome, and only then
acknowledges the stream entry. A replica killed at any point leaves its entry
pending; a live replica takes it over (XAUTOCLAIM) and, because the entry was
delivered before, asks the exchange for the cloid before sending: an order is
never sent twice. The replicas also keep the exchange's dead man's switch armed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from hlquant.bus.redis_state import RedisStreamBus
from hlquant.core.events import (
    CancelAck,
    CancelRequest,
    Event,
    LeverageRequest,
    ModifyRequest,
    OrderAck,
    OrderRequest,
    OrderStatus,
    event_from_record,
)
from hlquant.kernel import Role, build_kernel
from hlquant.live.roles.common import Outage, role_spec, stop_on_signals

log = logging.getLogger(__name__)


class ClaimedElsewhere(RuntimeError):
    """Another replica holds the cloid's claim: leave the entry pending, retry later."""


class RouterReplica:
    """One stateless router replica (see module docstring)."""

    def __init__(self, cfg: Any, name: str, out_dir: str | Path | None = None, venue: Any = None) -> None:
        spec, r = role_spec(cfg)
        live = spec.live
        self.k = build_kernel(spec, Role.ROUTER, redis=r, out_dir=out_dir, venue=venue,
                              audit_flush_every=100, component=f"router-{name}")
        self.name = name
        self.r = r
        self.symbols = self.k.symbols
        self.venue, self.idem, self.audit = self.k.venue, self.k.idempotency, self.k.audit
        self.out = RedisStreamBus(r, live.namespace, maxlen=live.stream_maxlen)
        self.bus = RedisStreamBus(r, live.namespace, group="routers", consumer=name, maxlen=live.stream_maxlen)
        for s in self.symbols:
            self.bus.subscribe(f"OrderRequest:{{{s}}}", self.on_order)
            self.bus.subscribe(f"CancelRequest:{{{s}}}", self.on_cancel)
            self.bus.subscribe(f"Modify:{{{s}}}", self.on_modify)
            self.bus.subscribe(f"LeverageRequest:{{{s}}}", self.on_leverage)
        self.claim_ttl_ms = live.claim_ttl_ms
        self.dms_ms = live.dead_mans_switch_ms
        self.counters = {"sent": 0, "skipped_done": 0, "found_on_exchange": 0, "deferred": 0, "cancels": 0,
                         "cancelled_unsent": 0}
        self._dms_until = 0

    def _exec(self, ev: Event) -> None:
        self.audit.record(ev)
        self.out.publish(f"Exec:{{{ev.symbol}}}", ev)

    def _done(self, ack: OrderAck) -> None:
        """Record the outcome (the whole ack, so a replica that redelivers the entry can
        report it again), then publish it."""
        self.idem.mark(ack.cloid, json.dumps(ack.to_record()))
        self._exec(ack)

    def _recorded(self, cloid: str) -> OrderAck | None:
        state = self.idem.state(cloid)
        if not state:
            return None
        try:
            ev = event_from_record(json.loads(state))
        except (ValueError, KeyError, TypeError):
            return None
        return ev if isinstance(ev, OrderAck) else None

    def on_order(self, _topic: str, req: Event) -> None:
        assert isinstance(req, OrderRequest)
        now = int(time.time() * 1000)
        if self.idem.state(req.cloid):
            # another replica finished it but may have died before its Exec went out:
            # report the recorded outcome again (a duplicate outcome is harmless)
            self.counters["skipped_done"] += 1
            done = self._recorded(req.cloid)
            if done is not None:
                self.out.publish(f"Exec:{{{done.symbol}}}", done)
            return
        if not self.idem.claim(req.cloid, self.name, self.claim_ttl_ms, now):
            self.counters["deferred"] += 1
            raise ClaimedElsewhere(f"{req.cloid} claimed by {self.idem.owner(req.cloid, now)}: retry later")
        if self.bus.redelivery:
            ack = self.venue.order_status(req.cloid)  # a dead replica may have sent it already
            if ack is not None and ack.status == OrderStatus.UNKNOWN:
                self.counters["deferred"] += 1
                raise ClaimedElsewhere(f"{req.cloid}: a lost request may still land: retry later")
            if ack is not None:
                self.counters["found_on_exchange"] += 1
                self._done(ack)
                return
        self.audit.record(req)
        ack = self.venue.submit([req])[0]
        self.counters["sent"] += 1
        if ack.status == OrderStatus.UNKNOWN:
            # the exchange's answer was ambiguous and lookups could not settle it yet: say so,
            # keep the entry pending (redelivered, looked up again, never blindly re-sent)
            self.out.publish(f"Exec:{{{ack.symbol}}}", ack)
            raise ClaimedElsewhere(f"{req.cloid}: outcome unknown: looked up again later")
        self._done(ack)

    def on_cancel(self, _topic: str, c: Event) -> None:
        """A cancel can overtake its order: the order may still wait in a dead replica's
        pending entries. Then the cloid is claimed and marked cancelled, so no replica sends
        it later, and the cancel is reported done (the order never existed at the exchange)."""
        assert isinstance(c, CancelRequest)
        now = int(time.time() * 1000)
        if c.cloid and not self.idem.state(c.cloid):
            if not self.idem.claim(c.cloid, self.name, self.claim_ttl_ms, now):
                self.counters["deferred"] += 1
                raise ClaimedElsewhere(f"cancel of {c.cloid}: the order is being sent by "
                                       f"{self.idem.owner(c.cloid, now)}: retry later")
            known = self.venue.order_status(c.cloid)
            if known is None:
                self.audit.record(c)
                self.counters["cancelled_unsent"] += 1
                self._done(OrderAck(now, now, c.cloid, c.symbol, OrderStatus.CANCELED,
                                    error=f"cancelled before it was sent: {c.reason}"))
                self._exec(CancelAck(now, now, c.symbol, c.cloid, 0, True, "", c.reason))
                return
            self.idem.mark(c.cloid, json.dumps(known.to_record()))  # a dead replica sent it
        self.audit.record(c)
        self.counters["cancels"] += 1
        for ack in self.venue.cancel([c]):
            self._exec(ack)

    def on_modify(self, _topic: str, req: Event) -> None:
        assert isinstance(req, OrderRequest)
        self.audit.record(ModifyRequest(req.ts_exch, req.ts_recv, req.cloid, req.agent, req.symbol, req.px,
                                        req.size))
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

    def run(self, stop: threading.Event, claim_idle_ms: int = 2_000) -> dict[str, Any]:
        last_claim = [0.0]

        def step() -> None:
            try:
                self.bus.poll(block_ms=50, count=100)
            except ClaimedElsewhere as e:  # left pending, retried later
                log.info("%s", e)
            now = time.monotonic()
            if now - last_claim[0] > claim_idle_ms / 2000.0:
                try:
                    self.bus.claim_stale(min_idle_ms=claim_idle_ms)
                except ClaimedElsewhere as e:
                    log.info("%s", e)
                last_claim[0] = now
                self.keep_switch_armed()

        try:
            Outage(f"router {self.name}", stop).run(step)
        finally:
            self.audit.close()
        return dict(self.counters)


def run_router(cfg: Any, name: str, out_dir: str | Path | None = None,
               stop: threading.Event | None = None) -> dict[str, Any]:
    stop = stop_on_signals(stop)
    rep = Outage(f"router {name}", stop).call(RouterReplica, cfg, name, out_dir)
    log.info("router replica %s (pid %d) consuming order streams for %s", name, os.getpid(), rep.symbols)
    return rep.run(stop)
