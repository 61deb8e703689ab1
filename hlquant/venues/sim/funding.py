"""Funding: each print pays ``-size x oracle_px x rate`` (longs pay a positive
rate). A cross position's payment moves the account's cash, an isolated
one's moves its own margin (and so its liquidation price)."""

from __future__ import annotations

import math

from hlquant.core.events import FundingPayment


class FundingMixin:
    """Part of ``SimVenue``: hourly funding payments."""

    def on_funding(self, symbol: str, ts: int, rate: float, oracle_px: float, premium: float = 0.0) -> None:
        p = self._pos[symbol]
        if ts >= self._next_due:
            self._due(ts)
        if not p.size:
            return
        px = oracle_px if oracle_px == oracle_px else self.mark_price(symbol)
        amount = -p.size * px * rate
        if symbol in self._iso_syms:
            p.iso_margin += amount
            self._update_iso_liq(symbol)
        else:
            self.cash += amount
        self._slack = -math.inf
        p.funding += amount
        self._emit(FundingPayment(ts, ts, symbol, rate, p.size, px, amount))
