"""Funding-rate carry: collect funding by leaning against the crowd.

When the smoothed hourly funding rate is above ``threshold`` longs pay shorts,
so the agent holds a short of ``size_usd``; below ``-threshold`` it holds a
long; in between it is flat. Funding payments show up separately from trading
PnL and fees in the report.
"""

from __future__ import annotations

from hlquant.agents import Agent, Context, Intent


class FundingCarry(Agent):
    features = [
        {"name": "funding_ema", "kind": "ema", "input": "funding.rate", "params": {"span": "{span}"}},
    ]
    defaults = {"span": 6, "threshold": 0.00002, "size_usd": 20_000.0}

    def setup(self, ctx: Context) -> None:
        self.state: dict[str, int] = {}

    def decide(self, ctx: Context) -> Intent | None:
        rate = ctx.feature("funding_ema")
        th = self.params["threshold"]
        want = -1 if rate > th else (1 if rate < -th else 0)
        if want == self.state.get(ctx.symbol):
            return None
        self.state[ctx.symbol] = want
        return ctx.target(want * self.params["size_usd"] / ctx.price(), reason=f"funding {rate:.2e}")
