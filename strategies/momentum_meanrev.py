"""Two agents on one symbol that often disagree: the risk engine nets them.

- ``Momentum`` holds a long while the close is above its EMA over
  ``lookback`` bars (by more than ``band``), a short while below.
- ``MeanReversion`` fades stretched prices: short when the z-score of the
  close over ``window`` bars is above ``z``, long below ``-z``, flat inside.

Each posts its own target on the Blackboard (``intent:{SYMBOL}``); the risk
engine sums the targets and sends one order for the difference, so opposing
views cost no fees.
"""

from __future__ import annotations

from hlquant.agents import Agent, Context, Intent


class Momentum(Agent):
    features = [
        {"name": "trend", "kind": "ema", "input": "candle.close", "params": {"span": "{lookback}"}},
    ]
    defaults = {"lookback": 60, "band": 0.0005, "size_usd": 10_000.0}

    def setup(self, ctx: Context) -> None:
        self.side: dict[str, int] = {}

    def decide(self, ctx: Context) -> Intent | None:
        m = ctx.price() / ctx.feature("trend") - 1.0
        band = self.params["band"]
        if abs(m) < band:
            return None
        side = 1 if m > 0 else -1
        if side == self.side.get(ctx.symbol):
            return None
        self.side[ctx.symbol] = side
        return ctx.target(side * self.params["size_usd"] / ctx.price(), reason="momentum")


class MeanReversion(Agent):
    features = [
        {"name": "z", "kind": "zscore", "input": "candle.close", "params": {"window": "{window}"}},
    ]
    defaults = {"window": 30, "z": 1.5, "size_usd": 10_000.0}

    def setup(self, ctx: Context) -> None:
        self.side: dict[str, int] = {}

    def decide(self, ctx: Context) -> Intent | None:
        z = ctx.feature("z")
        if z != z:
            return None
        lim = self.params["z"]
        side = -1 if z > lim else (1 if z < -lim else 0)
        if side == self.side.get(ctx.symbol):
            return None
        self.side[ctx.symbol] = side
        return ctx.target(side * self.params["size_usd"] / ctx.price(), reason=f"z={z:.2f}")
