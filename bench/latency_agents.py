"""Agents for bench/live_latency.py (importable by the role processes it starts)."""

from __future__ import annotations

from hlquant.agents import Agent


class TickFlip(Agent):
    """Flips between +/- size on every trade it is triggered by: one order per tick."""

    features = [{"name": "ema", "kind": "ema", "input": "trade.px", "params": {"span": 20}}]
    defaults = {"size": 0.001}

    def setup(self, ctx):
        self.sign = 1

    def decide(self, ctx):
        ctx.feature("ema")
        self.sign = -self.sign
        return ctx.target(self.sign * self.params["size"], reason="tick")


class Idle(Agent):
    """Reads the feature on every tick and never trades (more agents, same connections)."""

    features = TickFlip.features

    def decide(self, ctx):
        ctx.feature("ema")
        return None
