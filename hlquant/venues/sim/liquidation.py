"""Liquidation: cross equity below the cross maintenance margin closes every
cross position at the mark (taker fee) and cancels all orders
(``MARGIN_CANCELED``); an isolated position whose own equity falls below its
maintenance margin (maintenance_margin_fraction x initial margin) is closed
alone, at its liquidation price's mark, and its orders are cancelled."""

from __future__ import annotations

import math

from hlquant.core.events import OrderRequest, OrderStatus, Side, Tif
from hlquant.venues.sim.orders import SimOrder


class LiquidationMixin:
    """Part of ``SimVenue``: maintenance-margin checks on every price."""

    def _check_liquidation(self, ts: int, symbol: str | None = None) -> None:
        """Hot path (every print while a position is open). Isolated: one comparison
        with the position's liquidation price. Cross: a full pass runs only when the
        margin of safety measured at the last pass could have been used up: a mark
        move of d on size q changes equity by at most |q| d and maintenance margin
        by |q| d mm/lev, so the slack shrinks by at most |q| d (1 + mm/lev). Each of
        the k cross positions gets slack/k of it, as a price band around its mark at
        that pass; a print inside its symbol's band needs no pass (all marks inside
        their bands use up at most the whole slack)."""
        mmf = self.config.maintenance_margin_fraction
        iso = self._iso_syms
        if symbol is not None:
            if iso and symbol in iso:
                p = self._pos[symbol]
                liq = self._aux.iso_liq.get(symbol, math.nan)
                m = self._mark.get(symbol) or self._last.get(symbol) or self._mid.get(symbol, math.nan)
                if (p.size > 0 and m <= liq) or (p.size < 0 and m >= liq):
                    self._liquidate_isolated(ts, symbol)
                return
            if self._slack > 0:
                m = self._mark.get(symbol) or self._last.get(symbol) or self._mid.get(symbol, math.nan)
                band = self._band.get(symbol)
                if band is not None and band[0] <= m <= band[1]:
                    return
        eq, mu = self.cash, 0.0
        marks: dict[str, float] = {}
        for s, p in self._pos.items():
            if p.size and not (iso and s in iso):
                m = self._mark.get(s) or self._last.get(s) or self._mid.get(s, math.nan)
                marks[s] = m
                eq += p.size * (m - p.entry)
                mu += abs(p.size) * m / self._lev[s]
        slack = eq - mu * mmf
        self._slack = slack if slack == slack else -math.inf
        self._aux.margin_passes += 1
        self._band = {}
        if self._slack > 0 and marks:
            share = self._slack / len(marks)
            for s, m in marks.items():
                w = share / (abs(self._pos[s].size) * (1.0 + mmf / self._lev[s]))
                self._band[s] = (m - w, m + w)
        if not mu or slack >= 0:
            return
        for o in list(self._live.values()):
            if o.is_live:
                self._close(o, OrderStatus.MARGIN_CANCELED)
                self._emit(o.ack(ts))
        for s, p in self._pos.items():
            if p.size and not (iso and s in iso):
                self._liquidate(ts, s)

    def _liquidate_isolated(self, ts: int, symbol: str) -> None:
        for o in list(self._live.values()):
            if o.is_live and o.req.symbol == symbol:
                self._close(o, OrderStatus.MARGIN_CANCELED)
                self._emit(o.ack(ts))
        self._liquidate(ts, symbol)

    def _liquidate(self, ts: int, symbol: str) -> None:
        p = self._pos[symbol]
        mark = self.mark_price(symbol)
        self._oid += 1
        side = Side.SELL if p.size > 0 else Side.BUY
        req = OrderRequest(ts, ts, "", "liquidation", "", symbol, side, abs(p.size), None, Tif.IOC, True)
        lo = SimOrder(self._oid, req, ts)
        self._orders[lo.oid] = lo
        self._fill(lo, mark, abs(p.size), ts, maker=False, liquidity="liquidation")
        lo.status = OrderStatus.FILLED
