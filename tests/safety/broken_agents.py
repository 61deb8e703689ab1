"""Strategies with bugs, for the order-safety tests (importable by subprocesses)."""

from __future__ import annotations

from hlquant.agents import Agent, Context, Intent


class Flipper(Agent):
    """A healthy agent: alternates a small long and short on every bar."""

    defaults = {"size_usd": 2_000.0}

    def setup(self, ctx: Context) -> None:
        self.n = 0

    def decide(self, ctx: Context) -> Intent | None:
        self.n += 1
        return ctx.target((1 if self.n % 2 else -1) * self.params["size_usd"] / ctx.price())


class BreaksOnBar(Agent):
    """Trades like Flipper, then raises on bar ``at`` (a strategy bug)."""

    defaults = {"size_usd": 2_000.0, "at": 5, "how": "raise"}

    def setup(self, ctx: Context) -> None:
        self.n = 0
        if self.params["how"] == "setup":
            raise KeyError("lookback")  # a typo in the strategy's own parameters

    def decide(self, ctx: Context):
        self.n += 1
        if self.n >= self.params["at"]:
            if self.params["how"] == "raise":
                return 1 / 0
            if self.params["how"] == "wrong_type":
                return {"target": 1.0}
            if self.params["how"] == "bad_side":
                return ctx.order("hold", 0.01)
        return ctx.order("buy", self.params["size_usd"] / ctx.price(), px=ctx.price() * 0.9)
