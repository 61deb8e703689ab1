"""HyperliquidVenue: the Venue interface over signed REST and the user channels.

The router cannot tell it from the SimVenue. Synchronous calls go out over
REST; fills, order updates and funding arrive from the WebSocket user
channels (``on_exchange_event``) and reach the listeners with the order's
cloid attached even when the exchange reports only an oid, including after a
modify gave the order a new oid.

Ambiguous replies. Every reply is accepted, rejected (definitive: the
exchange's code) or unknown (``errors.classify_reply``). An unknown outcome
- no reply, a 5xx, a body that is not the exchange's JSON - is resolved by
looking the cloid up (``orderStatus``) with bounded retries, exponential
backoff and jitter. The order is sent again only once the exchange says it
does not know the cloid *and* the first request can no longer land (it was
signed with ``expiresAfter``, and that time plus a clock-skew margin has
passed). If the venue still cannot tell, the ack says so:
``OrderStatus.UNKNOWN`` with ``ErrorCode.UNKNOWN_OUTCOME``; the caller keeps
the order pending and asks ``order_status`` again later, which answers
UNKNOWN (not None) for as long as the request could still land.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from hlquant.core.assets import AssetSpec
from hlquant.core.errors import ExchangeError, RateLimitError
from hlquant.core.events import (
    CancelAck,
    CancelRequest,
    ErrorCode,
    Event,
    Fill,
    OrderAck,
    OrderRequest,
    OrderStatus,
)
from hlquant.hyperliquid import normalize as nz
from hlquant.hyperliquid.errors import UnavailableError, UnknownOutcomeError, classify_error
from hlquant.hyperliquid.exchange import ExchangeClient
from hlquant.hyperliquid.info import InfoClient
from hlquant.venues.base import VenueListener

log = logging.getLogger(__name__)


class HyperliquidVenue:
    """``lookups``/``backoff_*``: how an unknown outcome is resolved (attempts, first
    and largest wait, with jitter); ``resolve_timeout_s``: how long at most (default:
    until the request's expiry has passed); ``skew_ms``: margin for the exchange's
    clock; ``resubmits``: how often one order may be sent again after a lookup proved
    the exchange never got it."""

    name = "hyperliquid"

    def __init__(self, info: InfoClient, exchange: ExchangeClient, symbols: Sequence[str] | None = None,
                 clock_ms: Callable[[], int] | None = None, *, lookups: int = 12, backoff_base_s: float = 0.25,
                 backoff_max_s: float = 4.0, resolve_timeout_s: float | None = None, skew_ms: int = 2_000,
                 resubmits: int = 1, rng: random.Random | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.info = info
        self.exchange = exchange
        self.user = exchange.signer.account_address
        all_assets = info.assets()
        self._assets = {s: all_assets[s] for s in (symbols or all_assets)}
        self.exchange.assets.update(self._assets)
        self._listeners: list[VenueListener] = []
        self._clock = clock_ms or (lambda: int(time.time() * 1000))
        self.lookups, self.backoff_base_s, self.backoff_max_s = lookups, backoff_base_s, backoff_max_s
        self.resolve_timeout_s, self.skew_ms, self.resubmits = resolve_timeout_s, skew_ms, resubmits
        self.rng = rng or random.Random()
        self._sleep = sleep
        self.cloid_by_oid: dict[int, str] = {}
        self.oid_by_cloid: dict[str, int] = {}
        self._inflight: dict[str, int] = {}  # cloid -> ms after which its lost request can no longer land
        self.mids: dict[str, float] = {}
        self.counters = {"lost_replies": 0, "resolved_by_status": 0, "retried": 0, "unresolved": 0,
                         "fills": 0, "duplicate_fills": 0, "recovered_fills": 0, "lookups": 0}
        self._tids: set[int] = set()
        self.last_fill_ms = 0

    # --- Venue protocol ----------------------------------------------------------
    def assets(self) -> dict[str, AssetSpec]:
        return dict(self._assets)

    def add_listener(self, listener: VenueListener) -> None:
        self._listeners.append(listener)

    def _emit(self, ev: Event) -> None:
        for cb in self._listeners:
            cb(ev)

    def _ref_prices(self, orders: Sequence[OrderRequest]) -> dict[str, float]:
        need = [o.symbol for o in orders if o.px is None and o.trigger_px is None and o.symbol not in self.mids]
        if need:
            self.mids.update(self.info.all_mids())
        return self.mids

    #: how often at most the address budget is re-read while our count says it is spent (an
    #: info request of weight 20: once a second would take the whole IP budget)
    BUDGET_RECHECK_MS = 10_000

    def refresh_budget(self) -> None:
        """Read the address budget from the exchange's own numbers (``userRateLimit``)."""
        d = self.info.user_rate_limit(self.user)
        self.exchange.budget.update(int(d["nRequestsUsed"]), int(d["nRequestsCap"]), self._clock())

    def _budget_allows(self, n: int) -> bool:
        b, now = self.exchange.budget, self._clock()
        if b.remaining < n and now - b.checked_ms >= self.BUDGET_RECHECK_MS:
            # our count only grows while the exchange's cap grows with the volume traded:
            # ask the exchange before refusing (at most every 10 s, the pace it grants when spent)
            try:
                self.refresh_budget()
            except ExchangeError as e:
                log.warning("address budget not refreshed: %s", e)
        return b.remaining >= n or b.pace(now)

    def submit(self, orders: Sequence[OrderRequest], grouping: str = "na") -> list[OrderAck]:
        if not orders:
            return []
        if not self._budget_allows(len(orders)):
            # out of address budget: the exchange would throttle us; let the router hold the orders
            raise RateLimitError(f"address budget exhausted ({self.exchange.budget.used}/"
                                 f"{self.exchange.budget.cap} requests)")
        return self._submit(list(orders), self.resubmits, grouping)

    def _submit(self, orders: list[OrderRequest], resubmits: int, grouping: str = "na") -> list[OrderAck]:
        now = self._clock()
        try:
            statuses = self.exchange.place(orders, self._ref_prices(orders), grouping)
        except RateLimitError:
            raise  # never processed: the router keeps the orders and backs off
        except UnavailableError as e:  # never sent: nothing to resolve, the router may send again
            return [OrderAck(now, now, o.cloid, o.symbol, OrderStatus.REJECTED, 0, error=e.message,
                             code=ErrorCode.UNAVAILABLE) for o in orders]
        except UnknownOutcomeError as e:
            self.counters["lost_replies"] += 1
            log.warning("order reply unknown (%s): resolving %d order(s) by cloid", e, len(orders))
            expires = self.exchange.last_expires_at
            return [self._resolve(o, expires, resubmits) for o in orders]
        except ExchangeError as e:  # a definitive refusal of the whole request
            if e.code is ErrorCode.RATE_LIMITED:  # "Too many cumulative requests": nothing placed
                b = self.exchange.budget
                b.update(b.cap, b.cap, 0)  # spent: re-read before the next request
                b.paced_ms = now  # and the exchange's one request per 10 s is not due yet
                raise RateLimitError(e.message) from e  # the router keeps the orders
            return [OrderAck(now, now, o.cloid, o.symbol, OrderStatus.REJECTED, 0, error=e.message, code=e.code)
                    for o in orders]
        return [self._ack(o, st, now) for o, st in zip(orders, statuses, strict=True)]

    def _ack(self, o: OrderRequest, st: Any, now: int) -> OrderAck:
        if isinstance(st, str):  # "waitingForFill" / "waitingForTrigger": a tp/sl leg, accepted
            return OrderAck(now, now, o.cloid, o.symbol, OrderStatus.OPEN, self.oid_by_cloid.get(o.cloid, 0))
        if "error" in st:
            return OrderAck(now, now, o.cloid, o.symbol, OrderStatus.REJECTED, 0, error=st["error"],
                            code=classify_error(st["error"]))
        if "resting" in st:
            oid = int(st["resting"]["oid"])
            self._track(o.cloid, oid)
            return OrderAck(now, now, o.cloid, o.symbol, OrderStatus.OPEN, oid)
        f = st["filled"]
        oid = int(f["oid"])
        self._track(o.cloid, oid)
        return OrderAck(now, now, o.cloid, o.symbol, OrderStatus.FILLED, oid, float(f["totalSz"]),
                        float(f["avgPx"]))

    def _track(self, cloid: str, oid: int) -> None:
        if cloid and oid:
            self.cloid_by_oid[oid] = cloid
            self.oid_by_cloid[cloid] = oid

    def _backoff(self, attempt: int) -> float:
        cap = min(self.backoff_max_s, self.backoff_base_s * (2 ** attempt))
        return self.rng.uniform(cap / 2, cap)  # equal jitter: never zero, never above the cap

    def _lookup(self, cloid: str) -> OrderAck | None:
        """One orderStatus request: the order, or None if the exchange does not know the
        cloid. Raises ExchangeError when it could not ask."""
        self.counters["lookups"] += 1
        rec = self.info.order_status(self.user, cloid)
        if rec is None:
            return None
        ack = nz.order_update(rec, self._clock())
        ack.cloid = ack.cloid or cloid
        self._track(cloid, ack.oid)
        return ack

    def _resolve(self, o: OrderRequest, expires_at: int | None, resubmits: int) -> OrderAck:
        """The exchange may or may not hold ``o``: ask until it says, then act on it."""
        t0 = self._clock()
        if not o.cloid:
            self.counters["unresolved"] += 1
            return OrderAck(t0, t0, o.cloid, o.symbol, OrderStatus.UNKNOWN, 0,
                            error="reply lost and the order has no cloid to look up", code=ErrorCode.UNKNOWN_OUTCOME)
        horizon = (expires_at if expires_at is not None else t0) + self.skew_ms
        self._inflight[o.cloid] = horizon
        limit_ms = t0 + int(1000 * (self.resolve_timeout_s if self.resolve_timeout_s is not None
                                    else max(0.0, (horizon - t0) / 1000) + 2 * self.backoff_max_s))
        why = "no lookup answered"
        for attempt in range(self.lookups):
            self._sleep(self._backoff(attempt))
            try:
                ack = self._lookup(o.cloid)
            except ExchangeError as e:
                why = f"lookup failed: {e}"
                if self._clock() > limit_ms:
                    break
                continue
            if ack is not None:
                self._inflight.pop(o.cloid, None)
                self.counters["resolved_by_status"] += 1
                return ack
            why = "the exchange does not know the cloid yet"
            if expires_at is not None and self._clock() > horizon:
                self._inflight.pop(o.cloid, None)  # the lost request can no longer land
                if resubmits <= 0:
                    now = self._clock()
                    return OrderAck(now, now, o.cloid, o.symbol, OrderStatus.REJECTED, 0,
                                    error="not placed: the reply was lost and resubmits are used up",
                                    code=ErrorCode.UNKNOWN_OUTCOME)
                self.counters["retried"] += 1
                return self._submit([o], resubmits - 1)[0]
            if self._clock() > limit_ms:
                break
        self.counters["unresolved"] += 1
        now = self._clock()
        log.warning("order %s: outcome still unknown (%s); it stays pending", o.cloid, why)
        return OrderAck(now, now, o.cloid, o.symbol, OrderStatus.UNKNOWN, self.oid_by_cloid.get(o.cloid, 0),
                        error=f"outcome unknown: {why}", code=ErrorCode.UNKNOWN_OUTCOME)

    def cancel(self, cancels: Sequence[CancelRequest]) -> list[CancelAck]:
        now = self._clock()
        out: list[CancelAck] = []
        for c in cancels:
            try:
                if c.oid:
                    st = self.exchange.cancel([(c.symbol, c.oid)])[0]
                else:
                    st = self.exchange.cancel_by_cloid([(c.symbol, c.cloid)])[0]
            except ExchangeError as e:
                out.append(CancelAck(now, now, c.symbol, c.cloid, c.oid or self.oid_by_cloid.get(c.cloid, 0), False,
                                     e.message, c.reason, e.code))
                continue
            ok = st == "success"
            err = "" if ok else (st.get("error", str(st)) if isinstance(st, dict) else str(st))
            out.append(CancelAck(now, now, c.symbol, c.cloid, c.oid or self.oid_by_cloid.get(c.cloid, 0), ok,
                                 err, c.reason, classify_error(err) if err else ErrorCode.NONE))
        return out

    def modify(self, cloid: str, order: OrderRequest) -> OrderAck:
        now = self._clock()
        try:
            self.exchange.modify(cloid, order, self.mids.get(order.symbol))
        except UnknownOutcomeError:
            return self.order_status(cloid) or OrderAck(now, now, cloid, order.symbol, OrderStatus.UNKNOWN,
                                                        self.oid_by_cloid.get(cloid, 0),
                                                        error="modify outcome unknown",
                                                        code=ErrorCode.UNKNOWN_OUTCOME)
        except ExchangeError as e:
            return OrderAck(now, now, cloid, order.symbol, OrderStatus.REJECTED,
                            self.oid_by_cloid.get(cloid, 0), error=e.message, code=e.code)
        ack = self.order_status(cloid)  # the replacement has a new oid: learn it
        return ack or OrderAck(now, now, cloid, order.symbol, OrderStatus.OPEN, 0)

    def order_status(self, cloid: str) -> OrderAck | None:
        """The order's current state; None only when the exchange says it does not know
        the cloid and no lost request for it can still land (UNKNOWN until then).
        Retries transient failures (bounded, with backoff); raises ``ExchangeError``
        (retryable code) if the exchange could not be asked."""
        last: ExchangeError | None = None
        for attempt in range(max(1, self.lookups // 3)):
            try:
                ack = self._lookup(cloid)
                break
            except ExchangeError as e:
                if not e.retryable:
                    raise
                last = e
                self._sleep(self._backoff(attempt))
        else:
            raise UnknownOutcomeError(f"order status of {cloid}: {last}")
        if ack is not None:
            self._inflight.pop(cloid, None)
            return ack
        horizon = self._inflight.get(cloid)
        if horizon is not None:
            now = self._clock()
            if now <= horizon:
                return OrderAck(now, now, cloid, "", OrderStatus.UNKNOWN, 0,
                                error="not on the exchange yet, but a lost request may still land",
                                code=ErrorCode.UNKNOWN_OUTCOME)
            self._inflight.pop(cloid, None)
        return None

    def open_orders(self) -> list[OrderAck]:
        now = self._clock()
        return [OrderAck(now, now, o.cloid or self.cloid_by_oid.get(o.oid, ""), o.coin, OrderStatus.OPEN, o.oid)
                for o in self.info.open_orders(self.user)]

    def positions(self) -> dict[str, float]:
        st = self.info.clearinghouse_state(self.user)
        return {c: p.size for c, p in st.positions.items() if p.size}

    def schedule_cancel(self, at_ms: int | None) -> None:
        self.exchange.schedule_cancel(at_ms)

    def set_leverage(self, symbol: str, leverage: int, cross: bool = True) -> None:
        self.exchange.update_leverage(symbol, leverage, cross)

    def update_isolated_margin(self, symbol: str, amount_usd: float) -> None:
        self.exchange.update_isolated_margin(symbol, amount_usd)

    # --- user channel events -----------------------------------------------------------
    def on_exchange_event(self, ev: Event) -> None:
        """Feed user-channel events here (from HyperliquidFeed); they reach the listeners."""
        if isinstance(ev, Fill):
            if ev.tid in self._tids:  # already delivered (snapshot, second channel, recovery)
                self.counters["duplicate_fills"] += 1
                return
            self._tids.add(ev.tid)
            self.last_fill_ms = max(self.last_fill_ms, ev.ts_exch)
            self.counters["fills"] += 1
            if not ev.cloid:
                ev.cloid = self.cloid_by_oid.get(ev.oid, "")
        elif isinstance(ev, OrderAck):
            if ev.cloid:
                self._track(ev.cloid, ev.oid)
            else:
                ev.cloid = self.cloid_by_oid.get(ev.oid, "")
        self._emit(ev)

    def recover_fills(self, since_ms: int | None = None) -> int:
        """Fetch fills since ``since_ms`` (default: the last one seen) with ``userFillsByTime``
        and deliver the ones never seen (by trade id). Returns how many were recovered."""
        start = self.last_fill_ms if since_ms is None else since_ms
        n = 0
        for f in self.info.user_fills_by_time(self.user, max(start - 1, 0)):
            if f.tid not in self._tids:
                self.on_exchange_event(f)
                n += 1
        self.counters["recovered_fills"] += n
        return n
