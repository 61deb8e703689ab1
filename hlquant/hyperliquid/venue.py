"""HyperliquidVenue: the Venue interface over signed REST and the user channels.

The router cannot tell it from the SimVenue. Synchronous calls go out over
REST; fills, order updates and funding arrive from the WebSocket user
channels (``on_exchange_event``) and reach the listeners with the order's
cloid attached even when the exchange reports only an oid, including after a
modify gave the order a new oid. A request whose reply is lost (timeout,
dropped connection) is resolved by looking the cloid up with ``orderStatus``
before anything is sent again, so a retry can never place a duplicate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import requests

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
from hlquant.hyperliquid.errors import classify_error
from hlquant.hyperliquid.exchange import ExchangeClient
from hlquant.hyperliquid.info import InfoClient
from hlquant.venues.base import VenueListener

log = logging.getLogger(__name__)
_LOST = (requests.Timeout, requests.ConnectionError)


class HyperliquidVenue:
    name = "hyperliquid"

    def __init__(self, info: InfoClient, exchange: ExchangeClient, symbols: Sequence[str] | None = None,
                 clock_ms=None) -> None:
        self.info = info
        self.exchange = exchange
        self.user = exchange.signer.account_address
        all_assets = info.assets()
        self._assets = {s: all_assets[s] for s in (symbols or all_assets)}
        self.exchange.assets.update(self._assets)
        self._listeners: list[VenueListener] = []
        self._clock = clock_ms or (lambda: int(time.time() * 1000))
        self.cloid_by_oid: dict[int, str] = {}
        self.oid_by_cloid: dict[str, int] = {}
        self.mids: dict[str, float] = {}
        self.counters = {"lost_replies": 0, "resolved_by_status": 0, "retried": 0, "fills": 0,
                         "duplicate_fills": 0, "recovered_fills": 0}
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

    def refresh_budget(self) -> None:
        """Read the address budget from the exchange's own numbers (``userRateLimit``)."""
        d = self.info.user_rate_limit(self.user)
        self.exchange.budget.update(int(d["nRequestsUsed"]), int(d["nRequestsCap"]))

    def submit(self, orders: Sequence[OrderRequest]) -> list[OrderAck]:
        if not orders:
            return []
        if self.exchange.budget.remaining < len(orders):
            # out of address budget: the exchange would throttle us; let the router hold the orders
            raise RateLimitError(f"address budget exhausted ({self.exchange.budget.used}/"
                                 f"{self.exchange.budget.cap} requests)")
        now = self._clock()
        try:
            statuses = self.exchange.place(list(orders), self._ref_prices(orders))
        except _LOST as e:
            self.counters["lost_replies"] += 1
            log.warning("order reply lost (%s): resolving %d order(s) by cloid", e, len(orders))
            return [self._resolve_lost(o) for o in orders]
        except RateLimitError:
            raise  # the router keeps the orders and backs off
        except ExchangeError as e:
            return [OrderAck(now, now, o.cloid, o.symbol, OrderStatus.REJECTED, 0, error=e.message)
                    for o in orders]
        return [self._ack(o, st, now) for o, st in zip(orders, statuses, strict=True)]

    def _ack(self, o: OrderRequest, st: dict, now: int) -> OrderAck:
        if "error" in st:
            return OrderAck(now, now, o.cloid, o.symbol, OrderStatus.REJECTED, 0, error=st["error"])
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
        if cloid:
            self.cloid_by_oid[oid] = cloid
            self.oid_by_cloid[cloid] = oid

    def _resolve_lost(self, o: OrderRequest) -> OrderAck:
        """The exchange may or may not have the order: ask before sending it again."""
        ack = self.order_status(o.cloid) if o.cloid else None
        if ack is not None:
            self.counters["resolved_by_status"] += 1
            return ack
        self.counters["retried"] += 1
        return self.submit([o])[0]

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
                st = {"error": e.message}
            ok = st == "success"
            err = "" if ok else st.get("error", str(st))
            out.append(CancelAck(now, now, c.symbol, c.cloid, c.oid or self.oid_by_cloid.get(c.cloid, 0), ok,
                                 err, c.reason, classify_error(err) if err else ErrorCode.NONE))
        return out

    def modify(self, cloid: str, order: OrderRequest) -> OrderAck:
        now = self._clock()
        try:
            self.exchange.modify(cloid, order, self.mids.get(order.symbol))
        except ExchangeError as e:
            return OrderAck(now, now, cloid, order.symbol, OrderStatus.REJECTED,
                            self.oid_by_cloid.get(cloid, 0), error=e.message)
        ack = self.order_status(cloid)  # the replacement has a new oid: learn it
        return ack or OrderAck(now, now, cloid, order.symbol, OrderStatus.OPEN, 0)

    def order_status(self, cloid: str) -> OrderAck | None:
        rec = self.info.order_status(self.user, cloid)
        if rec is None:
            return None
        ack = nz.order_update(rec, self._clock())
        ack.cloid = ack.cloid or cloid
        self._track(cloid, ack.oid)
        return ack

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
        and deliver the ones never seen (by tid). Returns how many were recovered."""
        start = self.last_fill_ms if since_ms is None else since_ms
        n = 0
        for f in self.info.user_fills_by_time(self.user, max(start - 1, 0)):
            if f.tid not in self._tids:
                self.on_exchange_event(f)
                n += 1
        self.counters["recovered_fills"] += n
        return n
