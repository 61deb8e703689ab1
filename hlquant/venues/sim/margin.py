"""Margin: cross and isolated accounting, leverage, the account view.

Cross positions share the account's cash (``cash`` is the cross balance);
an isolated position holds its own margin (``Position.iso_margin``), taken
from cash when it opens or grows and released pro rata when it shrinks, so
its liquidation depends on that margin alone. Initial margin is
notional / leverage. See Hyperliquid's docs, "Trading > Margining"
(https://hyperliquid.gitbook.io/hyperliquid-docs/trading/margining).
"""

from __future__ import annotations

import math

from hlquant.core.errors import ExchangeError
from hlquant.core.events import ErrorCode
from hlquant.venues.sim.config import AccountState, PositionState


class MarginMixin:
    """Part of ``SimVenue``: equity, margin, leverage and isolated margin."""

    # --- totals ------------------------------------------------------------------
    def equity(self) -> float:
        """Account value: cash + unrealized PnL + isolated margins."""
        e = self.cash
        for s, p in self._pos.items():
            if p.size:
                e += p.size * (self.mark_price(s) - p.entry) + p.iso_margin
        return e

    def cross_equity(self) -> float:
        e = self.cash
        iso = self._iso_syms
        for s, p in self._pos.items():
            if p.size and s not in iso:
                e += p.size * (self.mark_price(s) - p.entry)
        return e

    def margin_used(self) -> float:
        """Cross: notional / leverage; isolated: the position's own equity."""
        m = 0.0
        iso = self._iso_syms
        for s, p in self._pos.items():
            if p.size:
                mark = self.mark_price(s)
                if s in iso:
                    m += p.iso_margin + p.size * (mark - p.entry)
                else:
                    m += abs(p.size) * mark / self._lev[s]
        return m

    def cross_margin_used(self) -> float:
        m = 0.0
        iso = self._iso_syms
        for s, p in self._pos.items():
            if p.size and s not in iso:
                m += abs(p.size) * self.mark_price(s) / self._lev[s]
        return m

    def _order_margin(self) -> float:
        m = 0.0
        for o in self._live.values():
            if not o.req.reduce_only and o.req.trigger_px is None:
                px = o.req.px or self.mark_price(o.req.symbol)
                m += o.remaining * px / self._lev[o.req.symbol]
        return m

    def available(self) -> float:
        """Free cross collateral for new orders and margin transfers."""
        return self.equity() - self.margin_used() - self._order_margin()

    def withdrawable(self) -> float:
        return max(0.0, self.available())

    def transfer(self, amount: float) -> None:
        """USDC into (positive) or out of (negative) the cross balance: deposits,
        withdrawals and transfers between accounts of the fake exchange."""
        if not math.isfinite(amount):
            raise ExchangeError("Invalid transfer amount.", code=ErrorCode.BAD_REQUEST)
        self.cash += amount
        self._slack = -math.inf

    # --- leverage ----------------------------------------------------------------
    def leverage(self, symbol: str) -> tuple[str, int]:
        """("cross" | "isolated", leverage) of ``symbol``."""
        self._spec(symbol)
        return ("isolated" if symbol in self._iso_syms else "cross"), self._lev[symbol]

    def set_leverage(self, symbol: str, leverage: int, cross: bool = True) -> None:
        spec = self._spec(symbol)
        a = spec.asset_id
        if not 1 <= leverage <= spec.max_leverage:
            raise ExchangeError(f"Invalid leverage value. asset={a}", code=ErrorCode.INVALID_LEVERAGE)
        p = self._pos[symbol]
        iso = not cross
        if p.size and iso != (symbol in self._iso_syms):
            raise ExchangeError(f"Cannot switch leverage type with open position. asset={a}",
                                code=ErrorCode.INVALID_LEVERAGE)
        if p.size and iso:
            mark = self.mark_price(symbol)
            if p.iso_margin + p.size * (mark - p.entry) < abs(p.size) * mark / leverage - 1e-9:
                raise ExchangeError(f"Insufficient margin to decrease leverage. asset={a}",
                                    code=ErrorCode.INSUFFICIENT_MARGIN)
        self._lev[symbol] = int(leverage)
        if iso:
            self._iso_syms.add(symbol)
        else:
            self._iso_syms.discard(symbol)
        self._slack = -math.inf
        self._update_iso_liq(symbol)

    def update_isolated_margin(self, symbol: str, amount: float) -> None:
        """Move ``amount`` USDC into (positive) or out of (negative) an isolated position."""
        spec = self._spec(symbol)
        a = spec.asset_id
        p = self._pos[symbol]
        if not p.size or symbol not in self._iso_syms:
            raise ExchangeError(f"No isolated position to update margin for. asset={a}",
                                code=ErrorCode.BAD_REQUEST)
        if not math.isfinite(amount) or amount == 0:
            raise ExchangeError(f"Invalid margin amount. asset={a}", code=ErrorCode.BAD_REQUEST)
        if amount > 0:
            if amount > self.available() + 1e-9:
                raise ExchangeError(f"Insufficient margin to add to isolated position. asset={a}",
                                    code=ErrorCode.INSUFFICIENT_MARGIN)
        else:
            mark = self.mark_price(symbol)
            left = p.iso_margin + amount + p.size * (mark - p.entry)
            if left < abs(p.size) * mark / self._lev[symbol] - 1e-9:
                raise ExchangeError(f"Insufficient margin to remove from isolated position. asset={a}",
                                    code=ErrorCode.INSUFFICIENT_MARGIN)
        self.cash -= amount
        p.iso_margin += amount
        self._slack = -math.inf
        self._update_iso_liq(symbol)

    # --- liquidation prices ----------------------------------------------------------
    def _iso_liq_price(self, symbol: str) -> float:
        """Mark at which an isolated position's equity meets its maintenance margin:
        ``M + s (px - e) = |s| px mm / lev``."""
        p = self._pos[symbol]
        k = self.config.maintenance_margin_fraction / self._lev[symbol]
        denom = p.size - abs(p.size) * k
        if not p.size or not denom:
            return math.nan
        return max((p.size * p.entry - p.iso_margin) / denom, 0.0)

    def _update_iso_liq(self, symbol: str) -> None:
        if symbol in self._iso_syms and self._pos[symbol].size:
            self._aux.iso_liq[symbol] = self._iso_liq_price(symbol)
        else:
            self._aux.iso_liq.pop(symbol, None)

    def account_state(self) -> AccountState:
        positions = {}
        eq = self.equity()
        mu = self.margin_used()
        ceq = self.cross_equity()
        cmu = self.cross_margin_used()
        mmf = self.config.maintenance_margin_fraction
        for s, p in self._pos.items():
            if not p.size:
                continue
            mark = self.mark_price(s)
            lev = self._lev[s]
            unreal = p.size * (mark - p.entry)
            if s in self._iso_syms:
                positions[s] = PositionState(p.size, p.entry, unreal, p.iso_margin + unreal, lev,
                                             self._iso_liq_price(s), p.funding, p.realized,
                                             "isolated", p.iso_margin)
                continue
            # price at which cross equity hits maintenance margin, other positions held fixed
            mm_frac = mmf / lev
            denom = p.size - abs(p.size) * mm_frac
            other_mm = (cmu - abs(p.size) * mark / lev) * mmf
            liq = mark - (ceq - other_mm - abs(p.size) * mark * mm_frac) / denom if denom else math.nan
            positions[s] = PositionState(p.size, p.entry, unreal, abs(p.size) * mark / lev, lev,
                                         max(liq, 0.0), p.funding, p.realized)
        return AccountState(self.cash, eq, mu, max(0.0, eq - mu - self._order_margin()), positions, ceq, cmu)
