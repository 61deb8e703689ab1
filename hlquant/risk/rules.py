"""Example custom risk rules (``risk.rules=[hlquant.risk.rules:avoid_funding_minute]``).

A rule is a function ``(RuleContext) -> str | None``: return a reason to
reject the order, or None to let it through. Rules run after the built-in
limits and before the order-rate bucket, inside the one path to the router,
so every rejection is audited like the built-in ones.
"""

from __future__ import annotations

from hlquant.risk.engine import RuleContext

HOUR_MS = 3_600_000


def avoid_funding_minute(ctx: RuleContext) -> str | None:
    """No new exposure in the minute before the hourly funding payment (reducing is fine)."""
    increases = abs(ctx.current + ctx.delta) > abs(ctx.current) + 1e-12
    if increases and HOUR_MS - ctx.now % HOUR_MS <= 60_000:
        return "no new exposure in the minute before funding"
    return None


def max_order_share_of_equity(ctx: RuleContext, share: float = 0.25) -> str | None:
    """One order may not exceed a share of account equity."""
    if abs(ctx.delta) * ctx.price > share * max(ctx.equity, 0.0):
        return f"order notional above {share:.0%} of equity"
    return None
