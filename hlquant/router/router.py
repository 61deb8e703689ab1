"""OrderRouter: turns approved risk decisions into venue orders, exactly once.

Stateless by design (all state that matters lives in the idempotency store
and at the venue), so several replicas may run. The idempotency key is the
Hyperliquid cloid, derived from the intent id (``hlquant.core.ids.cloid_for``)
and claimed in the store *before* the order is sent: a duplicate intent, a
retry or a second replica never produces a second order. Orders and cancels
are queued and sent in batches (Hyperliquid charges ``1 + floor(n/40)``
weight per batch) under a token bucket.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hlquant.audit.log import AuditLog
from hlquant.core.assets import AssetSpec
from hlquant.core.clock import Clock
from hlquant.core.errors import ExchangeError, RateLimitError
from hlquant.core.events import (
    CancelAck,
    CancelRequest,
    DuplicateOrder,
    ErrorCode,
    Event,
    Fill,
    FundingPayment,
    ModifyRequest,
    OrderAck,
    OrderRequest,
    OrderStatus,
    OrderView,
    Side,
    Superseded,
    Tif,
)
from hlquant.core.ids import cloid_for
from hlquant.core.ratelimit import TokenBucket
from hlquant.router.idempotency import IdempotencyStore
from hlquant.venues.base import Venue


@dataclass(frozen=True)
class RouterConfig:
    """Router settings.

    - name ("router-0"): replica id, the owner recorded on claimed cloids.
    - exec_style ("market"): how target deltas are executed: ``market`` (an IOC limit at
      the reference price ± market_slippage_cap: the exchange has no market orders),
      ``limit`` (IOC limit at reference price ± limit_offset_bps) or ``passive`` (ALO at
      the reference price, rests).
    - limit_offset_bps (10.0): aggressiveness of ``limit`` orders.
    - market_slippage_cap (0.05): how far from the reference price a market order may fill
      (its IOC limit), and the limit of a stop that opens or adds to a position (a
      stop-limit at trigger ± cap). Every order the router sends carries a limit price, so
      the risk engine knows the worst price each order can fill at.
    - claim_ttl_ms (7 days): how long a claimed cloid blocks a resend.
    - max_batch (40): orders per venue call (Hyperliquid weight 1 + floor(n/40)).
    - orders_per_s (50.0) / burst (100): token bucket on orders sent; orders
      beyond it wait in the queue for the next flush.
    - weight_per_min (1200): Hyperliquid's IP weight budget; each batch costs
      ``1 + floor(n/40)``, so under pressure the router degrades by batching.
    - merge_superseded (True): a queued, unsent order from an agent's *target* intent
      is superseded by the same agent's newer one on that symbol: one order for
      their sum and the superseded one is reported (audit ``Superseded``), so a
      burst of intents never turns into a backlog of stale orders.
    """

    name: str = "router-0"
    exec_style: str = "market"
    limit_offset_bps: float = 10.0
    market_slippage_cap: float = 0.05
    claim_ttl_ms: int = 7 * 24 * 3600 * 1000
    max_batch: int = 40
    orders_per_s: float = 50.0
    burst: int = 100
    weight_per_min: float = 1200.0
    merge_superseded: bool = True

    def __post_init__(self) -> None:
        if self.exec_style not in ("market", "limit", "passive"):
            raise ValueError(f"router.exec_style must be market, limit or passive, not {self.exec_style!r}")
        if not 0 < self.market_slippage_cap < 1:
            raise ValueError(f"router.market_slippage_cap must be in (0, 1), got {self.market_slippage_cap!r}")
        for name in ("orders_per_s", "weight_per_min"):  # token-bucket rates
            v = getattr(self, name)
            if not 0 < v < float("inf"):
                raise ValueError(f"router.{name} must be a positive finite number, got {v!r}")
        for name in ("max_batch", "burst", "claim_ttl_ms"):
            if getattr(self, name) < 1:
                raise ValueError(f"router.{name} must be >= 1, got {getattr(self, name)!r}")
        if not 0 <= self.limit_offset_bps < float("inf"):
            raise ValueError(f"router.limit_offset_bps must be a finite number >= 0, got {self.limit_offset_bps!r}")


@dataclass(slots=True)
class OpenOrder:
    req: OrderRequest
    oid: int = 0
    remaining: float = 0.0
    status: OrderStatus = OrderStatus.PENDING
    filled_seen: float = 0.0  # sum of Fill events received for this order


@dataclass
class RouterStats:
    sent: int = 0
    superseded: int = 0
    netted_out: int = 0  # a new order that cancelled the queued ones exactly
    throttled: int = 0
    modified: int = 0
    duplicates: int = 0
    rejected: int = 0
    filled: int = 0
    cancels_sent: int = 0
    batches: int = 0
    deferred: int = 0
    by_error: dict[str, int] = field(default_factory=dict)


class OrderRouter:
    MAX_RESENDS = 3  # an order whose request never left is queued again at most this often

    def __init__(
        self,
        venue: Venue,
        idempotency: IdempotencyStore,
        clock: Clock,
        audit: AuditLog,
        config: RouterConfig | None = None,
        dead_mans_switch_ms: int = 0,
    ) -> None:
        """``dead_mans_switch_ms`` (0: off): keep the venue's scheduleCancel armed that far
        ahead (``keep_switch_armed``), so the exchange cancels everything if we go silent."""
        self.venue = venue
        self.idem = idempotency
        self.clock = clock
        self.audit = audit
        self.config = config or RouterConfig()
        self.assets: dict[str, AssetSpec] = venue.assets()
        self.bucket = TokenBucket(self.config.orders_per_s, self.config.burst, clock.now_ms())
        self.weight = TokenBucket(self.config.weight_per_min / 60.0, self.config.weight_per_min, clock.now_ms())
        self._mergeable: set[str] = set()  # queued cloids that came from target intents
        self.open: dict[str, OpenOrder] = {}  # by cloid
        self._oid_to_cloid: dict[int, str] = {}
        self._queue: list[OrderRequest] = []
        self._cancels: list[CancelRequest] = []
        self.stats = RouterStats()
        self.sinks: list[Callable[[Event], None]] = []  # portfolio, risk, ...
        self.unknown: set[str] = set()  # cloids whose outcome the venue could not yet tell
        self._resends: dict[str, int] = {}  # cloid -> times re-queued after UNAVAILABLE
        self._requeue: list[OrderRequest] = []
        self.dead_mans_switch_ms = int(dead_mans_switch_ms)
        self._dms_until = 0
        venue.add_listener(self.on_venue_event)

    # --- building orders ---------------------------------------------------
    def limit_price(self, symbol: str, side: int, ref_px: float, px: float | None = None,
                    tif: Tif | None = None, trigger_px: float | None = None,
                    reduce_only: bool = False) -> tuple[float | None, Tif]:
        """(limit price, tif) of the order the router sends for ``side`` (+1 buy, -1 sell).
        An explicit price is kept (on the tick grid); a market order becomes an IOC limit
        at ref ± market_slippage_cap; a stop that can open or add to a position becomes a
        stop-limit at trigger ± cap; a reduce-only stop stays a market stop (None)."""
        spec = self.assets[symbol]
        cfg = self.config
        if px is not None:
            return spec.round_price(px), tif if tif is not None else Tif.GTC
        if trigger_px is not None:
            if reduce_only:
                return None, Tif.GTC
            return spec.round_price(trigger_px * (1 + cfg.market_slippage_cap * side)), Tif.GTC
        if cfg.exec_style == "limit":
            return spec.round_price(ref_px * (1 + cfg.limit_offset_bps * 1e-4 * side)), Tif.IOC
        if cfg.exec_style == "passive":
            return spec.round_price(ref_px), Tif.ALO
        return spec.round_price(ref_px * (1 + cfg.market_slippage_cap * side)), Tif.IOC

    def symbols_open(self) -> set[str]:
        """Symbols with open orders."""
        return {o.req.symbol for o in self.open.values()}

    def pending_px_max(self, symbol: str, side: int) -> float:
        """Highest limit price among open orders on ``symbol`` and ``side`` that can add
        exposure (0.0 when there are none): the worst price they can fill at (buys)."""
        cap = self.config.market_slippage_cap
        out = 0.0
        for o in self.open.values():
            r = o.req
            if r.symbol == symbol and not r.reduce_only and int(r.side) == side:
                px = r.px if r.px is not None else (r.trigger_px or 0.0) * (1 + cap * side)
                out = max(out, px)
        return out

    def pending_sides(self, symbol: str) -> tuple[float, float, float, float]:
        """Sizes of open orders on ``symbol`` (triggers included): (buy, sell) that could add
        exposure if they filled, and (reduce-only buy, reduce-only sell)."""
        buy = sell = ro_buy = ro_sell = 0.0
        for o in self.open.values():
            r = o.req
            if r.symbol != symbol:
                continue
            if r.reduce_only:
                if r.side > 0:
                    ro_buy += o.remaining
                else:
                    ro_sell += o.remaining
            elif r.side > 0:
                buy += o.remaining
            else:
                sell += o.remaining
        return buy, sell, ro_buy, ro_sell

    def order_for(
        self,
        intent_id: str,
        agent: str,
        symbol: str,
        size: float,
        ref_px: float,
        reduce_only: bool = False,
        px: float | None = None,
        tif: Tif | None = None,
        trigger_px: float | None = None,
        tpsl: str | None = None,
        leg: int = 0,
    ) -> OrderRequest | None:
        """Signed ``size`` -> a rounded OrderRequest, or None if it rounds to zero."""
        spec = self.assets[symbol]
        side = Side.BUY if size > 0 else Side.SELL
        sz = spec.round_size(abs(size))
        if sz <= 0:
            return None
        if trigger_px is not None:
            trigger_px = spec.round_price(trigger_px)
        px, tif = self.limit_price(symbol, int(side), ref_px, px, tif, trigger_px, reduce_only)
        now = self.clock.now_ms()
        return OrderRequest(
            now, now, cloid_for(intent_id, leg), intent_id, agent, symbol, side, sz, px, tif,
            reduce_only, trigger_px, tpsl,
        )

    def send(self, req: OrderRequest, mergeable: bool = False) -> bool:
        """Claim the cloid and queue the order; False (and audited) if it was a duplicate.
        ``mergeable``: the order realizes a target (see ``merge_superseded``)."""
        now = self.clock.now_ms()
        if not self.idem.claim(req.cloid, self.config.name, self.config.claim_ttl_ms, now):
            self.stats.duplicates += 1
            self.audit.record(DuplicateOrder(now, now, req.cloid, req.intent_id, req.agent, req.symbol,
                                             self.idem.owner(req.cloid, now) or ""))
            return False
        if mergeable and self.config.merge_superseded:
            req = self._supersede(req, now)
            if req is None:
                return True
            self._mergeable.add(req.cloid)
        self.audit.record(req)
        self.open[req.cloid] = OpenOrder(req, remaining=req.size)
        self._queue.append(req)
        return True

    def _supersede(self, req: OrderRequest, now: int) -> OrderRequest | None:
        """Fold queued, unsent target orders on the same symbol into ``req``."""
        if req.reduce_only:
            return req  # a reduce-only flag is only right for the exact size risk computed
        old = [q for q in self._queue if q.symbol == req.symbol and q.agent == req.agent
               and q.cloid in self._mergeable and not q.reduce_only and q.trigger_px is None]
        if not old:
            return req
        signed = req.size * int(req.side) + sum(q.size * int(q.side) for q in old)
        for q in old:
            self._queue.remove(q)
            self._mergeable.discard(q.cloid)
            self.open.pop(q.cloid, None)
            self.idem.mark(q.cloid, "SUPERSEDED")
        self.stats.superseded += len(old)
        self.audit.record(Superseded(now, now, req.cloid, req.intent_id, req.agent, req.symbol,
                                     [q.cloid for q in old]))
        spec = self.assets[req.symbol]
        sz = spec.round_size(abs(signed))
        if sz <= 0:
            self.stats.netted_out += 1
            self.idem.mark(req.cloid, "NETTED_OUT")
            return None
        side = Side.BUY if signed > 0 else Side.SELL
        return OrderRequest(req.ts_exch, req.ts_recv, req.cloid, req.intent_id, req.agent, req.symbol, side, sz,
                            req.px, req.tif, req.reduce_only, req.trigger_px, req.tpsl)

    def modify(self, cloid: str, px: float | None = None, size: float | None = None) -> OrderAck | None:
        """Edit a resting order (cancel-and-replace at the venue: a new oid, the same cloid).
        A fill racing the edit lands on the old oid and is attributed through the cloid."""
        o = self.open.get(cloid)
        if o is None:
            return None
        spec = self.assets[o.req.symbol]
        new = OrderRequest(self.clock.now_ms(), self.clock.now_ms(), cloid, o.req.intent_id, o.req.agent,
                           o.req.symbol, o.req.side, spec.round_size(size) if size else o.remaining,
                           spec.round_price(px) if px else o.req.px, o.req.tif, o.req.reduce_only,
                           o.req.trigger_px, o.req.tpsl)
        self.audit.record(ModifyRequest(new.ts_exch, new.ts_recv, cloid, new.agent, new.symbol, new.px,
                                        new.size, o.oid))
        ack = self.venue.modify(cloid, new)
        self.stats.modified += 1
        if ack.status != OrderStatus.REJECTED and cloid in self.open:
            self.open[cloid].req = new
            self.open[cloid].remaining = new.size
        self._on_order_ack(ack)
        return ack

    def cancel(self, cloid: str, reason: str) -> None:
        """Cancel an order: one still queued here is simply not sent (reported CANCELED);
        one at the venue gets a cancel request with the next flush."""
        o = self.open.get(cloid)
        if o is None:
            return
        now = self.clock.now_ms()
        if o.req in self._queue:
            self._queue.remove(o.req)
            self._mergeable.discard(cloid)
            self.idem.mark(cloid, "DROPPED")
            self._on_order_ack(OrderAck(now, now, cloid, o.req.symbol, OrderStatus.CANCELED,
                                        error=f"not sent: {reason}"))
            return
        self._cancels.append(CancelRequest(now, now, o.req.symbol, cloid, o.oid, reason))

    def cancel_agent(self, agent: str, reason: str) -> list[str]:
        """Queue cancels for every open order of ``agent``; returns their cloids."""
        cl = [c for c, o in self.open.items() if o.req.agent == agent]
        for c in cl:
            self.cancel(c, reason)
        return cl

    def cancel_all(self, reason: str) -> list[str]:
        cl = list(self.open)
        for c in cl:
            self.cancel(c, reason)
        return cl

    @property
    def has_work(self) -> bool:
        return bool(self._queue or self._cancels)

    @property
    def queued(self) -> int:
        """Approved orders waiting for rate budget (not sent yet)."""
        return len(self._queue)

    def adopt(self, req: OrderRequest, oid: int) -> None:
        """An order already resting at the venue (found there after a restart): tracked as
        open, so it counts as pending and is cancelled like any other."""
        self.open[req.cloid] = OpenOrder(req, oid=oid, remaining=req.size, status=OrderStatus.OPEN)
        self._oid_to_cloid[oid] = req.cloid
        self.idem.claim(req.cloid, self.config.name, self.config.claim_ttl_ms, self.clock.now_ms())

    def drop_queued(self, reason: str) -> list[str]:
        """Forget queued orders that were never sent (a stop): each is reported CANCELED
        with ``reason`` and its cloid marked, so nothing sends it later."""
        dropped = [req.cloid for req in self._queue]
        for cloid in dropped:
            self.cancel(cloid, reason)
        return dropped

    def keep_switch_armed(self, now: int) -> None:
        """Re-arm the venue's dead man's switch once half its window has passed."""
        ms = self.dead_mans_switch_ms
        if ms and now + ms // 2 >= self._dms_until:
            self._dms_until = now + ms
            self.venue.schedule_cancel(self._dms_until)

    def disarm_switch(self) -> None:
        if self.dead_mans_switch_ms and self._dms_until:
            self.venue.schedule_cancel(None)
            self._dms_until = 0

    def resolve_unknown(self) -> int:
        """Ask the venue again about orders whose reply was ambiguous; returns how many
        are settled. Until then they count as pending, so nothing re-sends their size."""
        done = 0
        for cloid in list(self.unknown):
            try:
                ack = self.venue.order_status(cloid)
            except ExchangeError as e:
                if e.retryable:
                    continue  # the exchange could not be asked: next time
                raise
            o = self.open.get(cloid)
            if ack is None and o is not None:  # never placed, and no lost request can still land
                now = self.clock.now_ms()
                ack = OrderAck(now, now, cloid, o.req.symbol, OrderStatus.REJECTED,
                               error="not on the exchange after an ambiguous reply", code=ErrorCode.NOT_FOUND)
            if ack is not None and ack.status != OrderStatus.UNKNOWN:
                self.unknown.discard(cloid)
                self._on_order_ack(ack)
                done += 1
        return done

    def open_orders_view(self) -> list[OrderView]:
        """Open orders as agents see them (``ctx.open_orders()``)."""
        return [OrderView(c, o.req.symbol, o.req.agent, o.req.side, o.remaining, o.req.px, o.req.tif,
                          o.req.reduce_only, o.req.trigger_px) for c, o in self.open.items()]

    # --- sending -------------------------------------------------------------
    def flush(self) -> None:
        """Send queued cancels, then queued orders, batched and rate limited."""
        try:
            self._flush()
        finally:
            if self._requeue:
                self._queue.extend(self._requeue)
                self._requeue = []

    def _flush(self) -> None:
        self.audit.sync()  # every decision and order record is durable before anything leaves
        now = self.clock.now_ms()
        if self._cancels:
            cancels, self._cancels = self._cancels, []
            mb = self.config.max_batch
            for i in range(0, len(cancels), mb):
                batch = cancels[i : i + mb]
                for c in batch:
                    self.audit.record(c)
                self.stats.cancels_sent += len(batch)
                for ack in self.venue.cancel(batch):
                    self._on_cancel_ack(ack)
        if not self._queue:
            return
        mb = self.config.max_batch
        while self._queue:
            n = min(len(self._queue), mb, int(self.bucket.available(now)))
            if n <= 0 or not self.weight.take(1 + n // 40, now):
                self.stats.deferred += 1  # flushes that left orders queued for lack of budget
                return
            self.bucket.take(n, now)
            batch, self._queue = self._queue[:n], self._queue[n:]
            try:
                acks = self.venue.submit(batch)
            except RateLimitError:
                self._queue[:0] = batch  # the exchange says slow down: keep the orders, drain the budget
                self.weight.tokens = min(self.weight.tokens, 0.0)
                self.stats.throttled += 1
                return
            self.stats.batches += 1
            self.stats.sent += len(batch)
            for req, ack in zip(batch, acks, strict=True):
                self._mergeable.discard(req.cloid)
                self.idem.mark(req.cloid, ack.status.name)
                self._on_order_ack(ack)

    # --- venue events ------------------------------------------------------
    def _on_order_ack(self, ack: OrderAck) -> None:
        self.audit.record(ack)
        o = self.open.get(ack.cloid)
        if o is None:
            return
        if ack.oid:
            o.oid = ack.oid
            self._oid_to_cloid[ack.oid] = ack.cloid
        if (ack.status == OrderStatus.REJECTED and ack.code == ErrorCode.UNAVAILABLE
                and self._resends.get(ack.cloid, 0) < self.MAX_RESENDS):
            # the request never left (connection refused before sending): safe to send again
            self._resends[ack.cloid] = self._resends.get(ack.cloid, 0) + 1
            self.stats.deferred += 1
            self._requeue.append(o.req)  # with the next flush, not in a tight loop
            return
        o.status = ack.status
        if ack.status == OrderStatus.UNKNOWN:
            self.unknown.add(ack.cloid)  # kept open (pending) until resolve_unknown settles it
        else:
            self.unknown.discard(ack.cloid)
        if ack.status == OrderStatus.REJECTED:
            self.stats.rejected += 1
            self.stats.by_error[ack.code.name] = self.stats.by_error.get(ack.code.name, 0) + 1
        if ack.status in (OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.MARGIN_CANCELED):
            self.open.pop(ack.cloid, None)
        elif ack.status == OrderStatus.FILLED:
            # the exchange says filled; its fills may still be on their way (live: the user
            # channel). Until they arrive the order stays pending, so risk never re-sends the delta.
            self.stats.filled += 1
            awaiting = (ack.filled_sz or 0.0) - o.filled_seen
            if awaiting <= 1e-9:
                self.open.pop(ack.cloid, None)
            else:
                o.remaining = awaiting
        for s in self.sinks:
            s(ack)

    def _on_cancel_ack(self, ack: CancelAck) -> None:
        self.audit.record(ack)
        if ack.ok or ack.code == ErrorCode.NOT_FOUND:
            self.open.pop(ack.cloid or self._oid_to_cloid.get(ack.oid, ""), None)
        for s in self.sinks:
            s(ack)

    def on_venue_event(self, ev: Event) -> None:
        """Listener registered on the venue: fills, async acks, cancels, funding."""
        if isinstance(ev, Fill):
            o = self.open.get(ev.cloid)
            if o is not None:
                ev.agent = o.req.agent
                o.filled_seen += ev.sz
                o.remaining = max(0.0, o.remaining - ev.sz)
                if o.remaining <= 1e-12:
                    self.open.pop(ev.cloid, None)
            self.audit.record(ev)
            for s in self.sinks:
                s(ev)
        elif isinstance(ev, OrderAck):
            self._on_order_ack(ev)
        elif isinstance(ev, CancelAck):
            self._on_cancel_ack(ev)
        elif isinstance(ev, FundingPayment):
            self.audit.record(ev)
            for s in self.sinks:
                s(ev)

    # --- views for the risk engine ----------------------------------------
    def pending(self, symbol: str) -> float:
        """Signed size of open non-trigger orders on ``symbol`` (not yet filled)."""
        tot = 0.0
        for o in self.open.values():
            if o.req.symbol == symbol and o.req.trigger_px is None:
                tot += o.remaining * int(o.req.side)
        return tot
