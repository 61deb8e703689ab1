"""Matching: taker orders against the book, resting orders against later prints.

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

The market-data handlers here are the backtest's hot path: each does O(1)
work unless an order or a position on that symbol needs it.
"""

from __future__ import annotations

import math

import numpy as np

from hlquant.core.events import ErrorCode, Fill, OrderStatus, Tif
from hlquant.venues.sim.orders import SimOrder


class MatchingMixin:
    """Part of ``SimVenue``: execution, fills, positions and the market feed."""

    # --- taker ---------------------------------------------------------------------
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

    def _execute(self, o: SimOrder, now: int, ref: float | None = None) -> None:
        req = o.req
        sym = req.symbol
        spec = self._assets[sym]
        a = spec.asset_id
        if req.trigger_px is not None and not o.triggered:
            o.status = OrderStatus.OPEN
            aux = self._aux
            parent = self._orders.get(aux.parent_of.get(o.oid, 0)) if aux.parent_of else None
            if parent is not None and parent.status != OrderStatus.FILLED:
                aux.waiting.setdefault(parent.oid, []).append(o)  # a leg waits for its entry
            else:
                self._triggers[sym].append(o)
            return
        side = o.sign
        if req.reduce_only:
            pos = self._pos[sym].size
            if pos == 0 or (pos > 0) == (side > 0):
                self._reject(o, f"Reduce only order would increase position. asset={a}", ErrorCode.REDUCE_ONLY)
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
                self._reject(o, f"No liquidity. asset={a}", ErrorCode.IOC_NO_MATCH)
                return
            limit = best * (1 + self.config.market_slippage_cap * side)
            tif = Tif.IOC
        crosses = bool(levels) and (levels[0][0] <= limit if side > 0 else levels[0][0] >= limit)
        if tif == Tif.ALO:
            if crosses:
                self._reject(o, f"Post only order would have immediately matched, bbo was "
                                f"{spec.round_price(bid)}@{spec.round_price(ask)}. asset={a}",
                             ErrorCode.POST_ONLY_MATCH)
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
            self._finish(o, now)
        elif tif == Tif.IOC:
            if o.filled:
                self._close(o, OrderStatus.FILLED)
                self._on_filled(o, now)
            else:
                self._reject(o, f"Order could not immediately match against any resting orders. asset={a}",
                             ErrorCode.IOC_NO_MATCH)
        else:
            self._rest(o)

    def _reject(self, o: SimOrder, err: str, code: ErrorCode) -> None:
        self._close(o, OrderStatus.REJECTED)
        o.error = err
        o.code = code

    def _finish(self, o: SimOrder, ts: int) -> None:
        self._close(o, OrderStatus.FILLED)
        if o.siblings or self._aux.waiting:
            self._on_filled(o, ts)

    def _on_filled(self, o: SimOrder, ts: int) -> None:
        if self._aux.waiting and o.oid in self._aux.waiting:
            self._release_children(o, ts)
        if o.siblings:
            self._cancel_siblings(o, ts)

    def _rest(self, o: SimOrder) -> None:
        o.status = OrderStatus.OPEN
        lst = self._resting[o.req.symbol]
        lst.append(o)
        if o.sign > 0:
            self._nbids[o.req.symbol] += 1
        # price-time priority: best price first for each side
        lst.sort(key=lambda x: (-x.sign * (x.req.px or 0.0), x.oid))

    def _fill(self, o: SimOrder, px: float, sz: float, now: int, maker: bool, liquidity: str | None = None) -> None:
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
        """Apply a fill to the position; returns the realized PnL. An isolated position
        takes its initial margin from cash on opening and releases it pro rata on closing."""
        p = self._pos[sym]
        iso = sym in self._iso_syms if self._iso_syms else False
        closed = 0.0
        if p.size == 0 or (p.size > 0) == (signed > 0):
            new = p.size + signed
            p.entry = (p.entry * abs(p.size) + px * abs(signed)) / abs(new)
            p.size = new
            if iso:
                m = abs(signed) * px / self._lev[sym]
                p.iso_margin += m
                self.cash -= m
        else:
            q = min(abs(signed), abs(p.size))
            closed = q * (px - p.entry) * (1 if p.size > 0 else -1)
            if iso:
                rel = p.iso_margin * q / abs(p.size)
                p.iso_margin -= rel
                self.cash += rel
            new = p.size + signed
            if abs(new) < 1e-12:
                p.size, p.entry = 0.0, 0.0
                if iso:
                    self.cash += p.iso_margin
                    p.iso_margin = 0.0
            elif (new > 0) != (p.size > 0):
                p.size, p.entry = new, px
                if iso:
                    self.cash += p.iso_margin
                    m = abs(new) * px / self._lev[sym]
                    p.iso_margin = m
                    self.cash -= m
            else:
                p.size = new
        p.realized += closed
        if iso:
            self._update_iso_liq(sym)
        return closed

    # --- market feed (hot path) ------------------------------------------------------
    def on_trade(self, symbol: str, ts: int, side: int, px: float, sz: float) -> None:
        self._last[symbol] = px
        if ts >= self._next_due:
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
                    left -= self._maker_fill(o, min(o.remaining, left), ts)
        if self._pos[symbol].size:
            self._check_liquidation(ts, symbol)

    def on_candle(self, symbol: str, ts: int, o: float, h: float, l: float, c: float, v: float) -> None:  # noqa: E741
        self._last[symbol] = c
        if ts >= self._next_due:
            self._due(ts)
        if self._active[symbol]:
            self._check_triggers(symbol, ts, l, h, open_px=o)
            touch = self.config.fill_on_touch
            for od in list(self._resting[symbol]):
                lim = od.req.px
                hit = (l < lim or (touch and l == lim)) if od.sign > 0 else (h > lim or (touch and h == lim))
                if hit:
                    self._maker_fill(od, od.remaining, ts)
        if self._pos[symbol].size:
            self._check_liquidation(ts, symbol)

    def on_book(self, symbol: str, ts: int, bid_px: np.ndarray, bid_sz: np.ndarray,
                ask_px: np.ndarray, ask_sz: np.ndarray) -> None:
        self._book[symbol] = (ts, bid_px, bid_sz, ask_px, ask_sz)
        if len(bid_px) and len(ask_px):
            self._mid[symbol] = (float(bid_px[0]) + float(ask_px[0])) / 2
        if ts >= self._next_due:
            self._due(ts)
        if self._active[symbol] and len(bid_px) and len(ask_px):
            self._cross_resting(symbol, ts, float(bid_px[0]), float(ask_px[0]))

    def on_bbo(self, symbol: str, ts: int, bid_px: float, bid_sz: float, ask_px: float, ask_sz: float) -> None:
        self._bbo[symbol] = (ts, bid_px, bid_sz, ask_px, ask_sz)
        self._mid[symbol] = (bid_px + ask_px) / 2
        if ts >= self._next_due:
            self._due(ts)
        if self._active[symbol]:
            self._cross_resting(symbol, ts, bid_px, ask_px)

    def on_mark(self, symbol: str, ts: int, mark_px: float) -> None:
        self._mark[symbol] = mark_px
        if ts >= self._next_due:
            self._due(ts)
        if self._active[symbol]:
            self._check_triggers(symbol, ts, mark_px, mark_px)
        if self._pos[symbol].size:
            self._check_liquidation(ts, symbol)

    def _cross_resting(self, symbol: str, ts: int, bid: float, ask: float) -> None:
        for o in list(self._resting[symbol]):
            lim = o.req.px
            if (o.sign > 0 and ask == ask and ask < lim) or (o.sign < 0 and bid == bid and bid > lim):
                self._maker_fill(o, o.remaining, ts)

    def _maker_fill(self, o: SimOrder, qty: float, ts: int) -> float:
        """Fill ``qty`` of a resting order at its own price; returns the size filled. A
        reduce-only order fills only as far as it still reduces the position; what is left
        is cancelled (Hyperliquid's ``reduceOnlyCanceled``), never turned into new exposure."""
        if o.req.reduce_only:
            pos = self._pos[o.req.symbol].size
            qty = min(qty, abs(pos) if pos and (pos > 0) != (o.sign > 0) else 0.0)
        if qty > 1e-12:
            self._fill(o, o.req.px, qty, ts, maker=True)
        if o.remaining <= 1e-12:
            self._finish(o, ts)
            self._emit(o.ack(ts))
        elif o.req.reduce_only and self._pos[o.req.symbol].size * o.sign >= 0:  # nothing left to reduce
            self._close(o, OrderStatus.CANCELED)
            o.reason = "reduceOnlyCanceled"
            self._emit(o.ack(ts))
        return max(qty, 0.0)
