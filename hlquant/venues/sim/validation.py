"""Order validation on submit, with the exchange's own texts and a typed code.

Lot size (``szDecimals``), price at most 5 significant figures and
``6 - szDecimals`` decimals (integers always valid), the duplicate cloid,
the $10 minimum value, a reduce-only order that would increase the position,
and initial margin (notional / leverage) against what the account has free.
"""

from __future__ import annotations

import math

from hlquant.core.events import ErrorCode, OrderRequest

OK = ("", ErrorCode.NONE)


class ValidationMixin:
    """Part of ``SimVenue``: the checks an order passes before it exists."""

    def _validate(self, req: OrderRequest) -> tuple[str, ErrorCode]:
        spec = self._assets.get(req.symbol)
        if spec is None:
            return f"Unknown asset {req.symbol!r}.", ErrorCode.UNKNOWN_ASSET
        a = spec.asset_id
        size = req.size
        if not (size > 0) or not math.isfinite(size) or not spec.is_valid_size(size):
            return "Order has invalid size.", ErrorCode.INVALID_SIZE
        if req.px is not None and not spec.is_valid_price(req.px):
            return f"Price must be divisible by tick size. asset={a}", ErrorCode.INVALID_PRICE
        if req.trigger_px is not None and not spec.is_valid_price(req.trigger_px):
            return f"Price must be divisible by tick size. asset={a}", ErrorCode.INVALID_PRICE
        if req.cloid and req.cloid in self._by_cloid:
            return f"Duplicate client order id. asset={a}", ErrorCode.BAD_REQUEST
        ref = req.px or req.trigger_px or self.mark_price(req.symbol)
        if not (ref == ref):
            return f"No market price yet. asset={a}", ErrorCode.BAD_REQUEST
        pos = self._pos[req.symbol].size
        signed = size * int(req.side)
        if req.reduce_only:
            if pos == 0 or (pos > 0) == (signed > 0):
                return f"Reduce only order would increase position. asset={a}", ErrorCode.REDUCE_ONLY
            return OK
        if size * ref < self.config.min_order_value - 1e-9:
            return (f"Order must have minimum value of ${self.config.min_order_value:g}.",
                    ErrorCode.MIN_VALUE)
        incr = max(0.0, abs(pos + signed) - abs(pos))
        if incr > 0 and req.trigger_px is None:
            need = incr * ref / self._lev[req.symbol]
            if need > self.available() + 1e-9:
                return f"Insufficient margin to place order. asset={a}", ErrorCode.INSUFFICIENT_MARGIN
        return OK
