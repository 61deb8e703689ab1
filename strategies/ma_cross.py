"""Moving-average crossover: long when the fast EMA is above the slow one, short below.

Sizing: ``size_usd`` of notional at the moment the signal flips; the position
is held in coins until the next flip (no re-sizing every bar, so no churn).
Warm-up is the framework's: ``decide`` is first called once both EMAs have
seen their span of closes (the slow one: ``slow`` bars).
"""

from __future__ import annotations

from hlquant.agents import Agent, Context, Intent


class MACross(Agent):
    features = [
        {"name": "ema_fast", "kind": "ema", "input": "candle.close", "params": {"span": "{fast}"}},
        {"name": "ema_slow", "kind": "ema", "input": "candle.close", "params": {"span": "{slow}"}},
    ]
    defaults = {"fast": 10, "slow": 50, "size_usd": 10_000.0, "long_only": False}

    def setup(self, ctx: Context) -> None:
        if self.params["fast"] >= self.params["slow"]:
            raise ValueError(f"fast ({self.params['fast']}) must be < slow ({self.params['slow']})")
        self.side: dict[str, int] = {}

    def decide(self, ctx: Context) -> Intent | None:
        sym = ctx.symbol
        side = 1 if ctx.feature("ema_fast") > ctx.feature("ema_slow") else -1
        if side < 0 and self.params["long_only"]:
            side = 0
        if side == self.side.get(sym):
            return None
        self.side[sym] = side
        return ctx.target(side * self.params["size_usd"] / ctx.price(), reason=f"cross {side:+d}")
