"""Agents for the parity matrix: one per trigger the bundled strategies do not cover,
and one whose decisions depend on the account it reads (``ctx.position()``)."""

from __future__ import annotations

from hlquant.agents import Agent, Context, Intent


class TradeTrend(Agent):
    """Trigger ``trade``: long above the EMA of trade prices, short below."""

    features = [{"name": "tema", "kind": "ema", "input": "trade.px", "params": {"span": "{span}"}}]
    defaults = {"span": 20, "size_usd": 3_000.0}

    def setup(self, ctx: Context) -> None:
        self.side: dict[str, int] = {}

    def decide(self, ctx: Context) -> Intent | None:
        side = 1 if ctx.price() > ctx.feature("tema") else -1
        if side == self.side.get(ctx.symbol):
            return None
        self.side[ctx.symbol] = side
        return ctx.target(side * self.params["size_usd"] / ctx.price(), reason="trade trend")


class BookImbalance(Agent):
    """Trigger ``l2``: leans with the order-book imbalance of each snapshot."""

    features = [{"name": "obi", "kind": "obi", "input": "l2", "params": {"depth": 5}}]
    defaults = {"size_usd": 4_000.0}

    def decide(self, ctx: Context) -> Intent | None:
        side = 1 if ctx.feature("obi") > 0 else -1
        return ctx.target(side * self.params["size_usd"] / ctx.price(), reason="book imbalance")


class PositionStepper(Agent):
    """Trigger ``candle``: buys a step while the account holds less than ``cap_usd``, then
    sells it all reduce-only -- every decision depends on what ``ctx.position()`` says."""

    defaults = {"step_usd": 1_500.0, "cap_usd": 4_000.0}

    def decide(self, ctx: Context) -> Intent | None:
        px = ctx.price()
        pos = ctx.position()
        if pos * px < self.params["cap_usd"]:
            return ctx.order("buy", self.params["step_usd"] / px, reason=f"step from {pos:.6g}")
        return ctx.order("sell", pos, reduce_only=True, reason=f"flatten {pos:.6g}")
