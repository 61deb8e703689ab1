"""SimVenue: Hyperliquid's trading rules over historical (or replayed) market data.

Validation on submit (the exchange's own error texts): lot size
(``szDecimals``), price at most 5 significant figures and ``6 - szDecimals``
decimals (integers always valid), $10 minimum value, reduce-only that would
increase the position, and cross-margin sufficiency (initial margin =
notional / leverage, leverage capped by the asset's ``maxLeverage``).

Fill model
----------
- *Arrival.* An order sent at ``t`` arrives at ``t + latency_ms`` and is
  executed against the market state at that time (``advance``), not the one
  it was decided on.
- *Taker.* A marketable order walks the freshest L2 snapshot level by level
  (VWAP across levels, taker fee). With no L2 younger than
  ``book_max_age_ms`` it uses the BBO (best level only, its size); with
  neither, a book synthesized from the last trade / candle close
  ± ``half_spread_bps`` with unlimited size, plus ``slippage_bps`` impact.
  A market order (no price) is an IOC limit at best × (1 ± market_slippage_cap).
  ``Ioc`` cancels what it could not fill (and errors if it filled nothing),
  ``Gtc`` rests the remainder, ``Alo`` is rejected if it would cross.
- *Maker.* A resting order fills at its own limit price (maker fee) when a
  later trade prints through it (up to the trade's size, shared by resting
  orders in price-time priority), when a candle's low/high goes through it
  (fully), or when a new L2/BBO crosses it (fully).
- *Triggers.* tp/sl orders trigger on the mark (last mark, trade or candle
  close; a candle's low/high for stops inside the bar) and then execute as a
  market order (no price) or a limit at their price. Emits ``TRIGGERED``.
- *Funding.* Each funding print pays ``-size × oracle_px × rate`` (longs pay
  a positive rate).
- *Liquidation.* When equity falls below maintenance margin
  (``maintenance_margin_fraction`` × initial margin) every position is closed
  at the mark with the taker fee and all orders are cancelled.

The venue is deterministic: no wall clock, no randomness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from hlquant.core.assets import AssetSpec
from hlquant.core.clock import Clock, SimClock
from hlquant.core.errors import ExchangeError
from hlquant.core.events import (
    CancelAck,
    CancelRequest,
    ErrorCode,
    Event,
    Fill,
    FundingPayment,
    OrderAck,
    OrderRequest,
    OrderStatus,
    Side,
    Tif,
)
from hlquant.venues.base import VenueListener
from hlquant.venues.sim.config import AccountState, PositionState, SimVenueConfig

ERR_CANCEL = "Order was never placed, already canceled, or filled."


class _Order:
    __slots__ = ("oid", "req", "remaining", "filled", "notional", "status", "arrive", "triggered", "_err")

    def __init__(self, oid: int, req: OrderRequest, arrive: int) -> None:
        self.oid = oid
        self.req = req
        self.remaining = req.size
        self.filled = 0.0
        self.notional = 0.0
        self.status = OrderStatus.PENDING
        self.arrive = arrive
        self.triggered = False
        self._err = ""

    @property
    def sign(self) -> int:
        return int(self.req.side)

    def ack(self, ts: int, status: OrderStatus | None = None, error: str = "") -> OrderAck:
        avg = self.notional / self.filled if self.filled else 0.0
        return OrderAck(ts, ts, self.req.cloid, self.req.symbol, status or self.status, self.oid,
                        self.filled, avg, error)


class _Pos:
    __slots__ = ("size", "entry", "realized", "funding")

    def __init__(self) -> None:
        self.size = 0.0
        self.entry = 0.0
        self.realized = 0.0
        self.funding = 0.0


class SimVenue:
    """Simulated Hyperliquid perp venue for one account (see module docstring)."""

    name = "sim"

    def __init__(
        self,
        assets: dict[str, AssetSpec],
        config: SimVenueConfig | None = None,
        clock: Clock | None = None,
        account: str = "sim",
    ) -> None:
        self.config = config or SimVenueConfig()
        self.clock = clock or SimClock()
        self.account = account
        self._assets = dict(assets)
        self.cash = float(self.config.initial_cash)
        self._pos: dict[str, _Pos] = {s: _Pos() for s in assets}
        self._lev = {
            s: int(min(self.config.leverage.get(s, self.config.default_leverage), a.max_leverage))
            for s, a in assets.items()
        }
        self._last: dict[str, float] = {}
        self._last_ts: dict[str, int] = {}
        self._mark: dict[str, float] = {}
        self._mid: dict[str, float] = {}
        self._slack = -math.inf  # margin of safety at the last liquidation pass (-inf: recheck)
        self._band: dict[str, tuple[float, float]] = {}  # per open position: marks needing no pass
        self.margin_passes = 0  # full liquidation checks (the rest were inside the bands)
        self._book: dict[str, tuple] = {}  # sym -> (ts, bid_px, bid_sz, ask_px, ask_sz) arrays
        self._bbo: dict[str, tuple] = {}  # sym -> (ts, bid, bid_sz, ask, ask_sz)
        self._orders: dict[int, _Order] = {}
        self._live: dict[int, _Order] = {}  # open or pending only: what per-order scans iterate
        self._by_cloid: dict[str, int] = {}
        self._resting: dict[str, list[_Order]] = {s: [] for s in assets}  # bids best-first, then asks
        self._nbids: dict[str, int] = dict.fromkeys(assets, 0)
        self._triggers: dict[str, list[_Order]] = {s: [] for s in assets}
        self._pending: list[_Order] = []
        self._active: dict[str, int] = dict.fromkeys(assets, 0)
        self._listeners: list[VenueListener] = []
        self._oid = 0
        self._tid = 0
        self._dms_at: int | None = None
        self.fees_paid = 0.0

    # ------------------------------------------------------------------ protocol
    def assets(self) -> dict[str, AssetSpec]:
        return dict(self._assets)

    def add_listener(self, listener: VenueListener) -> None:
        self._listeners.append(listener)

    def _emit(self, ev: Event) -> None:
        for cb in self._listeners:
            cb(ev)

    def set_leverage(self, symbol: str, leverage: int, cross: bool = True) -> None:
        spec = self._spec(symbol)
        if not 1 <= leverage <= spec.max_leverage:
            raise ExchangeError(f"Invalid leverage value. asset={spec.asset_id}")
        self._lev[symbol] = int(leverage)
        self._slack = -math.inf

    def positions(self) -> dict[str, float]:
        return {s: p.size for s, p in self._pos.items() if p.size}

    def order_status(self, cloid: str) -> OrderAck | None:
        oid = self._by_cloid.get(cloid)
        if oid is None:
            return None
        return self._orders[oid].ack(self.clock.now_ms())

    def open_orders(self) -> list[OrderAck]:
        now = self.clock.now_ms()
        return [o.ack(now) for o in self._live.values()]

    def open_order_objects(self) -> list[_Order]:
        """Open orders with their request (for the fake exchange's openOrders)."""
        return list(self._live.values())

    def busy(self, symbol: str) -> bool:
        return self._active.get(symbol, 0) > 0 or bool(self._pending)

    def mark_price(self, symbol: str) -> float:
        """Mark, else last trade/candle close, else the book's mid."""
        return self._mark.get(symbol) or self._last.get(symbol) or self._mid.get(symbol, math.nan)

    # ------------------------------------------------------------------ account
    def _spec(self, symbol: str) -> AssetSpec:
        spec = self._assets.get(symbol)
        if spec is None:
            raise ExchangeError(f"Unknown asset {symbol!r}.")
        return spec

    def _unrealized(self) -> float:
        u = 0.0
        for s, p in self._pos.items():
            if p.size:
                u += p.size * (self.mark_price(s) - p.entry)
        return u

    def equity(self) -> float:
        return self.cash + self._unrealized()

    def margin_used(self) -> float:
        m = 0.0
        for s, p in self._pos.items():
            if p.size:
                m += abs(p.size) * self.mark_price(s) / self._lev[s]
        return m

    def _order_margin(self) -> float:
        m = 0.0
        for o in self._live.values():
            if not o.req.reduce_only and o.req.trigger_px is None:
                px = o.req.px or self.mark_price(o.req.symbol)
                m += o.remaining * px / self._lev[o.req.symbol]
        return m

    def account_state(self) -> AccountState:
        positions = {}
        eq = self.equity()
        mu = self.margin_used()
        for s, p in self._pos.items():
            if not p.size:
                continue
            mark = self.mark_price(s)
            lev = self._lev[s]
            # price at which equity hits maintenance margin, other positions held fixed
            mm_frac = self.config.maintenance_margin_fraction / lev
            denom = p.size - abs(p.size) * mm_frac
            other_mm = (mu - abs(p.size) * mark / lev) * self.config.maintenance_margin_fraction
            liq = mark - (eq - other_mm - abs(p.size) * mark * mm_frac) / denom if denom else math.nan
            positions[s] = PositionState(
                p.size, p.entry, p.size * (mark - p.entry), abs(p.size) * mark / lev, lev,
                max(liq, 0.0), p.funding, p.realized,
            )
        return AccountState(self.cash, eq, mu, max(0.0, eq - mu - self._order_margin()), positions)

    # ------------------------------------------------------------------ orders
    def submit(self, orders: Sequence[OrderRequest]) -> list[OrderAck]:
        now = self.clock.now_ms()
        self._due(now)
        acks = []
        for req in orders:
            err = self._validate(req)
            if err:
                acks.append(OrderAck(now, now, req.cloid, req.symbol, OrderStatus.REJECTED, 0, error=err))
                continue
            self._oid += 1
            o = _Order(self._oid, req, now + self.config.latency_ms)
            self._orders[o.oid] = o
            self._live[o.oid] = o
            if req.cloid:
                self._by_cloid[req.cloid] = o.oid
            self._active[req.symbol] += 1
            if self.config.latency_ms <= 0:
                self._execute(o, now)
                acks.append(o.ack(now, error=o._err))
            else:
                self._pending.append(o)
                acks.append(o.ack(now))
        return acks

    def _validate(self, req: OrderRequest) -> str:
        spec = self._assets.get(req.symbol)
        if spec is None:
            return f"Unknown asset {req.symbol!r}."
        a = spec.asset_id
        if req.size <= 0 or not spec.is_valid_size(req.size):
            return "Order has invalid size."
        if req.px is not None and not spec.is_valid_price(req.px):
            return f"Price must be divisible by tick size. asset={a}"
        if req.trigger_px is not None and not spec.is_valid_price(req.trigger_px):
            return f"Price must be divisible by tick size. asset={a}"
        if req.cloid and req.cloid in self._by_cloid:
            return f"Duplicate client order id. asset={a}"
        ref = req.px or req.trigger_px or self.mark_price(req.symbol)
        if not (ref == ref):
            return f"No market price yet. asset={a}"
        pos = self._pos[req.symbol].size
        signed = req.size * int(req.side)
        if req.reduce_only:
            if pos == 0 or (pos > 0) == (signed > 0):
                return f"Reduce only order would increase position. asset={a}"
            return ""
        if req.size * ref < self.config.min_order_value - 1e-9:
            return f"Order must have minimum value of ${self.config.min_order_value:g}."
        incr = max(0.0, abs(pos + signed) - abs(pos))
        if incr > 0 and req.trigger_px is None:
            need = incr * ref / self._lev[req.symbol]
            avail = self.equity() - self.margin_used() - self._order_margin()
            if need > avail + 1e-9:
                return f"Insufficient margin to place order. asset={a}"
        return ""

    def cancel(self, cancels: Sequence[CancelRequest]) -> list[CancelAck]:
        now = self.clock.now_ms()
        self._due(now)
        out = []
        for c in cancels:
            oid = c.oid or self._by_cloid.get(c.cloid, 0)
            o = self._orders.get(oid)
            if o is None or o.status not in (OrderStatus.OPEN, OrderStatus.PENDING):
                out.append(CancelAck(now, now, c.symbol, c.cloid, oid, False, ERR_CANCEL, c.reason,
                                     ErrorCode.NOT_FOUND))
                continue
            self._close(o, OrderStatus.CANCELED)
            out.append(CancelAck(now, now, o.req.symbol, o.req.cloid, oid, True, "", c.reason))
        return out

    def modify(self, cloid: str, order: OrderRequest) -> OrderAck:
        """Cancel-and-replace: the new order keeps the cloid and gets a new oid."""
        now = self.clock.now_ms()
        self._due(now)
        oid = self._by_cloid.get(cloid) if isinstance(cloid, str) else int(cloid)
        o = self._orders.get(oid or 0)
        if o is None or o.status not in (OrderStatus.OPEN, OrderStatus.PENDING):
            return OrderAck(now, now, cloid, order.symbol, OrderStatus.REJECTED, oid or 0,
                            error="Cannot modify canceled or filled order", code=ErrorCode.NOT_FOUND)
        self._close(o, OrderStatus.CANCELED)
        self._by_cloid.pop(o.req.cloid, None)
        if order.cloid != o.req.cloid:
            order = OrderRequest(order.ts_exch, order.ts_recv, o.req.cloid, order.intent_id, order.agent,
                                 order.symbol, order.side, order.size, order.px, order.tif,
                                 order.reduce_only, order.trigger_px, order.tpsl)
        return self.submit([order])[0]

    def schedule_cancel(self, at_ms: int | None) -> None:
        now = self.clock.now_ms()
        if at_ms is None:
            self._dms_at = None
            return
        if at_ms < now + 5000:
            raise ExchangeError("Scheduled cancel time too early, must be at least 5 seconds from now.")
        self._dms_at = int(at_ms)

    # ------------------------------------------------------------------ execution
    def _close(self, o: _Order, status: OrderStatus) -> None:
        if o.status in (OrderStatus.OPEN, OrderStatus.PENDING):
            self._active[o.req.symbol] -= 1
        self._live.pop(o.oid, None)
        o.status = status
        lst = self._resting[o.req.symbol]
        if o in lst:
            lst.remove(o)
            if o.sign > 0:
                self._nbids[o.req.symbol] -= 1
        tl = self._triggers[o.req.symbol]
        if o in tl:
            tl.remove(o)
        if o in self._pending:
            self._pending.remove(o)

    def _due(self, now: int) -> None:
        if self._pending:
            due = [o for o in self._pending if o.arrive <= now]
            if due:
                self._pending = [o for o in self._pending if o.arrive > now]
                for o in sorted(due, key=lambda o: (o.arrive, o.oid)):
                    self._execute(o, o.arrive)
                    if o.status != OrderStatus.OPEN or o.filled:
                        self._emit(o.ack(o.arrive, error=o._err))
                    else:
                        self._emit(o.ack(o.arrive))
        if self._dms_at is not None and now >= self._dms_at:
            at, self._dms_at = self._dms_at, None
            for o in list(self._live.values()):
                if o.status in (OrderStatus.OPEN, OrderStatus.PENDING):
                    self._close(o, OrderStatus.CANCELED)
                    self._emit(CancelAck(at, at, o.req.symbol, o.req.cloid, o.oid, True, "", "scheduleCancel"))

    def advance(self, ts: int) -> None:
        if self._pending or self._dms_at is not None:
            self._due(ts)

    def _levels(self, symbol: str, side: int, now: int) -> tuple[list[tuple[float, float]], float, float, bool]:
        """Opposite-side levels for a taker of ``side``; returns (levels, best bid, best ask, synthetic)."""
        maxage = self.config.book_max_age_ms
        b = self._book.get(symbol)
        if b is not None and now - b[0] <= maxage:
            _, bp, bs, ap, as_ = b
            px, sz = (ap, as_) if side > 0 else (bp, bs)
            lv = [(float(p), float(s)) for p, s in zip(px, sz, strict=False) if p == p and s > 0]
            if lv:
                return lv, float(bp[0]), float(ap[0]), False
        q = self._bbo.get(symbol)
        if q is not None and now - q[0] <= maxage:
            _, bid, bsz, ask, asz = q
            lv = [(ask, asz)] if side > 0 else [(bid, bsz)]
            return lv, bid, ask, False
        last = self._last.get(symbol) or self._mark.get(symbol)
        if last is None:
            return [], math.nan, math.nan, True
        hs = self.config.half_spread_bps * 1e-4
        slip = self.config.slippage_bps * 1e-4
        bid, ask = last * (1 - hs), last * (1 + hs)
        px = ask * (1 + slip) if side > 0 else bid * (1 - slip)
        return [(px, math.inf)], bid, ask, True

    def _execute(self, o: _Order, now: int, ref: float | None = None) -> None:
        req = o.req
        sym = req.symbol
        spec = self._assets[sym]
        if req.trigger_px is not None and not o.triggered:
            o.status = OrderStatus.OPEN
            self._triggers[sym].append(o)
            return
        side = o.sign
        if req.reduce_only:
            pos = self._pos[sym].size
            if pos == 0 or (pos > 0) == (side > 0):
                self._reject(o, f"Reduce only order would increase position. asset={spec.asset_id}")
                return
            o.remaining = min(o.remaining, abs(pos))
        levels, bid, ask, synthetic = self._levels(sym, side, now)
        if ref is not None and synthetic:  # a stop triggered inside a candle fills near its trigger
            slip = self.config.slippage_bps * 1e-4
            levels = [(ref * (1 + slip * side), math.inf)]
        limit = req.px
        tif = req.tif
        if limit is None:
            best = levels[0][0] if levels else math.nan
            if best != best:
                self._reject(o, f"No liquidity. asset={spec.asset_id}")
                return
            limit = best * (1 + self.config.market_slippage_cap * side)
            tif = Tif.IOC
        crosses = bool(levels) and (levels[0][0] <= limit if side > 0 else levels[0][0] >= limit)
        if tif == Tif.ALO:
            if crosses:
                self._reject(o, f"Post only order would have immediately matched, bbo was "
                                f"{spec.round_price(bid)}@{spec.round_price(ask)}. asset={spec.asset_id}")
                return
            self._rest(o)
            return
        if crosses:
            for px, avail in levels:
                if o.remaining <= 1e-12 or (px > limit if side > 0 else px < limit):
                    break
                q = min(o.remaining, avail)
                self._fill(o, px, q, now, maker=False)
        if o.remaining <= 1e-12:
            self._finish(o)
        elif tif == Tif.IOC:
            if o.filled:
                self._close(o, OrderStatus.FILLED if o.filled else OrderStatus.CANCELED)
                o.status = OrderStatus.FILLED
            else:
                self._reject(o, f"Order could not immediately match against any resting orders. asset={spec.asset_id}")
        else:
            self._rest(o)

    def _reject(self, o: _Order, err: str) -> None:
        self._close(o, OrderStatus.REJECTED)
        o._err = err

    def _finish(self, o: _Order) -> None:
        self._close(o, OrderStatus.FILLED)

    def _rest(self, o: _Order) -> None:
        o.status = OrderStatus.OPEN
        lst = self._resting[o.req.symbol]
        lst.append(o)
        if o.sign > 0:
            self._nbids[o.req.symbol] += 1
        # price-time priority: best price first for each side
        lst.sort(key=lambda x: (-x.sign * (x.req.px or 0.0), x.oid))

    def _fill(self, o: _Order, px: float, sz: float, now: int, maker: bool, liquidity: str | None = None) -> None:
        spec = self._assets[o.req.symbol]
        sz = spec.round_size(sz) if math.isfinite(sz) else sz
        if sz <= 0:
            return
        self._slack = -math.inf  # positions/cash change: the next print re-checks fully
        fee_rate = self.config.maker_fee if maker else self.config.taker_fee
        fee = px * sz * fee_rate
        closed = self._apply(o.req.symbol, o.sign * sz, px)
        self.cash += closed - fee
        self.fees_paid += fee
        o.remaining = max(0.0, o.remaining - sz)
        if o.remaining < 10 ** -(spec.sz_decimals + 2):
            o.remaining = 0.0
        o.filled += sz
        o.notional += px * sz
        self._tid += 1
        self._emit(Fill(now, now, o.req.symbol, o.req.cloid, o.oid, o.req.side, px, sz, fee,
                        liquidity or ("maker" if maker else "taker"), self._tid, o.req.agent, closed))

    def _apply(self, sym: str, signed: float, px: float) -> float:
        p = self._pos[sym]
        closed = 0.0
        if p.size == 0 or (p.size > 0) == (signed > 0):
            new = p.size + signed
            p.entry = (p.entry * abs(p.size) + px * abs(signed)) / abs(new)
            p.size = new
        else:
            q = min(abs(signed), abs(p.size))
            closed = q * (px - p.entry) * (1 if p.size > 0 else -1)
            new = p.size + signed
            if abs(new) < 1e-12:
                p.size, p.entry = 0.0, 0.0
            elif (new > 0) != (p.size > 0):
                p.size, p.entry = new, px
            else:
                p.size = new
        p.realized += closed
        return closed

    # ------------------------------------------------------------------ market feed
    def _price(self, symbol: str, ts: int, px: float) -> None:
        self._last[symbol] = px
        self._last_ts[symbol] = ts

    def on_trade(self, symbol: str, ts: int, side: int, px: float, sz: float) -> None:
        self._last[symbol] = px
        self._last_ts[symbol] = ts
        if self._pending:
            self._due(ts)
        if self._active[symbol]:
            self._check_triggers(symbol, ts, px, px)
            rest = self._resting[symbol]
            if rest:
                touch = self.config.fill_on_touch
                # bids (best first) then asks (best first): stop at the first level not traded
                # through, so a print costs O(orders it fills), not O(orders resting)
                nb = self._nbids[symbol]
                hits = []
                for k in range(nb):
                    o = rest[k]
                    lim = o.req.px
                    if px < lim or (touch and px == lim):
                        hits.append(o)
                    else:
                        break
                if not hits:
                    for k in range(nb, len(rest)):
                        o = rest[k]
                        lim = o.req.px
                        if px > lim or (touch and px == lim):
                            hits.append(o)
                        else:
                            break
                left = sz
                for o in hits:
                    if left <= 0:
                        break
                    q = min(o.remaining, left)
                    self._fill(o, o.req.px, q, ts, maker=True)
                    left -= q
                    if o.remaining <= 0:
                        self._finish(o)
                        self._emit(o.ack(ts))
        if self._pos[symbol].size:
            self._check_liquidation(ts, symbol)

    def on_candle(self, symbol: str, ts: int, o: float, h: float, l: float, c: float, v: float) -> None:  # noqa: E741
        self._last[symbol] = c
        self._last_ts[symbol] = ts
        if self._pending:
            self._due(ts)
        if self._active[symbol]:
            self._check_triggers(symbol, ts, l, h, open_px=o)
            touch = self.config.fill_on_touch
            for od in list(self._resting[symbol]):
                lim = od.req.px
                hit = (l < lim or (touch and l == lim)) if od.sign > 0 else (h > lim or (touch and h == lim))
                if hit:
                    self._fill(od, lim, od.remaining, ts, maker=True)
                    self._finish(od)
                    self._emit(od.ack(ts))
        if self._pos[symbol].size:  # the bands of _check_liquidation, checked here first
            band = self._band.get(symbol)
            m = self._mark.get(symbol) or c
            if not m or band is None or not band[0] <= m <= band[1] or not self._slack > 0:
                self._check_liquidation(ts, symbol)

    def on_book(self, symbol: str, ts: int, bid_px: np.ndarray, bid_sz: np.ndarray,
                ask_px: np.ndarray, ask_sz: np.ndarray) -> None:
        self._book[symbol] = (ts, bid_px, bid_sz, ask_px, ask_sz)
        if len(bid_px) and len(ask_px):
            self._mid[symbol] = (float(bid_px[0]) + float(ask_px[0])) / 2
        if self._pending:
            self._due(ts)
        if self._active[symbol]:
            self._cross_resting(symbol, ts, float(bid_px[0]), float(ask_px[0]))

    def on_bbo(self, symbol: str, ts: int, bid_px: float, bid_sz: float, ask_px: float, ask_sz: float) -> None:
        self._bbo[symbol] = (ts, bid_px, bid_sz, ask_px, ask_sz)
        self._mid[symbol] = (bid_px + ask_px) / 2
        if self._pending:
            self._due(ts)
        if self._active[symbol]:
            self._cross_resting(symbol, ts, bid_px, ask_px)

    def on_mark(self, symbol: str, ts: int, mark_px: float) -> None:
        self._mark[symbol] = mark_px
        if self._pending:
            self._due(ts)
        if self._active[symbol]:
            self._check_triggers(symbol, ts, mark_px, mark_px)
        if self._pos[symbol].size:
            self._check_liquidation(ts, symbol)

    def on_funding(self, symbol: str, ts: int, rate: float, oracle_px: float, premium: float = 0.0) -> None:
        p = self._pos[symbol]
        if self._pending:
            self._due(ts)
        if not p.size:
            return
        px = oracle_px if oracle_px == oracle_px else self.mark_price(symbol)
        amount = -p.size * px * rate
        self.cash += amount
        self._slack = -math.inf
        p.funding += amount
        self._emit(FundingPayment(ts, ts, symbol, rate, p.size, px, amount))

    def _cross_resting(self, symbol: str, ts: int, bid: float, ask: float) -> None:
        for o in list(self._resting[symbol]):
            lim = o.req.px
            if (o.sign > 0 and ask == ask and ask < lim) or (o.sign < 0 and bid == bid and bid > lim):
                self._fill(o, lim, o.remaining, ts, maker=True)
                self._finish(o)
                self._emit(o.ack(ts))

    def _check_triggers(self, symbol: str, ts: int, low: float, high: float, open_px: float | None = None) -> None:
        tl = self._triggers[symbol]
        if not tl:
            return
        for o in list(tl):
            trig = o.req.trigger_px
            # a sell stop / buy take-profit fires on the way down; buy stop / sell tp on the way up
            down = (o.sign < 0) == (o.req.tpsl != "tp")
            fired = low <= trig if down else high >= trig
            if not fired:
                continue
            tl.remove(o)
            o.triggered = True
            self._emit(o.ack(ts, OrderStatus.TRIGGERED))
            if open_px is None:
                ref = low  # a tick (trade / mark): the market is at that price now
            elif (down and open_px < trig) or (not down and open_px > trig):
                ref = open_px  # a candle gapped through the trigger: fills at the open
            else:
                ref = trig  # inside a candle's range: the trigger price was traded
            if o.req.px is None:
                self._execute(o, ts, ref=ref)
            else:
                self._execute(o, ts)
            if o.status != OrderStatus.OPEN:
                self._emit(o.ack(ts, error=o._err))

    def _check_liquidation(self, ts: int, symbol: str | None = None) -> None:
        """Liquidate when equity < maintenance margin. Hot path (every print while a position
        is open), so a full pass runs only when the margin of safety measured at the last pass
        could have been used up. A mark move of d on size q changes equity by at most |q| d and
        maintenance margin by |q| d mm/lev, so the slack shrinks by at most |q| d (1 + mm/lev):
        each of the k open positions gets slack/k of it, as a price band around its mark at
        that pass, and a print inside its symbol's band needs no pass (all marks inside their
        bands use up at most the whole slack)."""
        mmf = self.config.maintenance_margin_fraction
        if symbol is not None and self._slack > 0:
            m = self._mark.get(symbol) or self._last.get(symbol) or self._mid.get(symbol, math.nan)
            band = self._band.get(symbol)
            if band is not None and band[0] <= m <= band[1]:
                return
        eq, mu = self.cash, 0.0
        marks = {}
        for s, p in self._pos.items():
            if p.size:
                m = self._mark.get(s) or self._last.get(s) or self._mid.get(s, math.nan)
                marks[s] = m
                eq += p.size * (m - p.entry)
                mu += abs(p.size) * m / self._lev[s]
        slack = eq - mu * mmf
        self._slack = slack if slack == slack else -math.inf
        self.margin_passes += 1
        self._band = {}
        if self._slack > 0 and marks:
            share = self._slack / len(marks)
            for s, m in marks.items():
                w = share / (abs(self._pos[s].size) * (1.0 + mmf / self._lev[s]))
                self._band[s] = (m - w, m + w)
        if not mu or slack >= 0:
            return
        for o in list(self._live.values()):
            if o.status in (OrderStatus.OPEN, OrderStatus.PENDING):
                self._close(o, OrderStatus.MARGIN_CANCELED)
                self._emit(o.ack(ts))
        for s, p in self._pos.items():
            if p.size:
                mark = self.mark_price(s)
                self._oid += 1
                side = Side.SELL if p.size > 0 else Side.BUY
                req = OrderRequest(ts, ts, "", "liquidation", "", s, side, abs(p.size), None, Tif.IOC, True)
                lo = _Order(self._oid, req, ts)
                self._orders[lo.oid] = lo
                self._fill(lo, mark, abs(p.size), ts, maker=False, liquidity="liquidation")
                lo.status = OrderStatus.FILLED
