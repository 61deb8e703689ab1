"""Trend confirmed by sentiment: price features and an external series in one agent.

Enter long when the fast EMA is above the slow one *and* the sentiment score is
above ``threshold``, short when both point down; hold while the trend lasts and
go flat when it turns against the position. Sentiment decides the entries, the
trend the exits. The sentiment series comes from a connector (``connectors``
config group) as ``Signal`` events and is read with ``ctx.signal("sentiment")``
under the staleness rule ``sentiment*`` (5 minutes by default): a score older
than that skips the decision (counted), never trades on it.

``conf/strategy/sentiment_trend.yaml`` wires the seeded synthetic series
(``hlquant.data.sentiment``: correlated with the next 30 minutes of returns by
``connectors.sentiment.corr``), so the strategy runs offline; in paper or live
trading give a real series under the same name (``type: file`` or ``type: http``).
"""

from __future__ import annotations

from hlquant.agents import Agent, Context, Intent


class SentimentTrend(Agent):
    features = [
        {"name": "ema_fast", "kind": "ema", "input": "candle.close", "params": {"span": "{fast}"}},
        {"name": "ema_slow", "kind": "ema", "input": "candle.close", "params": {"span": "{slow}"}},
    ]
    signals = ("sentiment",)
    defaults = {"fast": 10, "slow": 50, "threshold": 1.0, "size_usd": 10_000.0}

    def setup(self, ctx: Context) -> None:
        if self.params["fast"] >= self.params["slow"]:
            raise ValueError(f"fast ({self.params['fast']}) must be < slow ({self.params['slow']})")
        self.side: dict[str, int] = {}
        self.bars: dict[str, int] = {}

    def decide(self, ctx: Context) -> Intent | None:
        sym = ctx.symbol
        self.bars[sym] = self.bars.get(sym, 0) + 1
        if self.bars[sym] < self.params["slow"]:  # EMAs still warming up
            return None
        trend = 1 if ctx.feature("ema_fast") > ctx.feature("ema_slow") else -1
        mood = ctx.signal("sentiment")
        th = self.params["threshold"]
        view = 1 if mood > th else (-1 if mood < -th else 0)
        held = self.side.get(sym, 0)
        if view == trend:
            side = trend  # both agree: enter (or stay)
        elif held and held != trend:
            side = 0  # the trend turned against the position: out
        else:
            side = held
        if side == held:
            return None
        self.side[sym] = side
        return ctx.target(side * self.params["size_usd"] / ctx.price(),
                          reason=f"trend {trend:+d} sentiment {mood:+.2f}")
