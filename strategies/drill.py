"""Operations drill: an agent that changes its mind on every bar, on purpose.

Not a trading strategy. It exists to load the live path (thousands of
intents, conflicting agents, constant re-netting) in crash drills and
latency benchmarks: ``hlquant component ... strategy=drill``. Its targets are
a seeded random walk over {-1, 0, +1} x ``size_usd``, so two drill agents
often disagree and the risk engine has real netting to do.
"""

from __future__ import annotations

import random

from hlquant.agents import Agent, Context, Intent


class RandomFlip(Agent):
    features: list = []
    defaults = {"size_usd": 200.0, "seed": 1}

    def setup(self, ctx: Context) -> None:
        self.rng = random.Random(f"{self.name}:{self.params['seed']}")

    def decide(self, ctx: Context) -> Intent | None:
        px = ctx.price()
        if px != px:
            return None
        side = self.rng.choice((-1, 0, 1))
        return ctx.target(side * self.params["size_usd"] / px, reason=f"drill {side:+d}")
