"""Agents of the signal tests (tests/live/test_signals_live.py)."""

from __future__ import annotations

from hlquant.agents import Agent


class BatchedSentiment(Agent):
    """Scores every symbol that closed a bar in one call: hold ``size_usd`` in the direction
    of the sentiment series once the EMAs are warm (a symbol with a stale input is left
    out by ``batch_inputs``)."""

    features = [
        {"name": "ema_fast", "kind": "ema", "input": "candle.close", "params": {"span": 3}},
        {"name": "ema_slow", "kind": "ema", "input": "candle.close", "params": {"span": 8}},
    ]
    signals = ("sentiment",)
    defaults = {"size_usd": 3_000.0}

    def decide_batch(self, ctxs):
        fresh, x = self.batch_inputs(ctxs, ("ema_fast", "ema_slow"), ("sentiment",))
        want = {}
        for c, (fast, slow, mood) in zip(fresh, x.tolist(), strict=True):
            if fast != fast or slow != slow:  # NaN: still warming up
                continue
            side = 1 if mood > 0 else -1
            want[id(c)] = c.target(side * self.params["size_usd"] / c.price(), reason=f"mood {mood:+.2f}")
        return [want.get(id(c)) for c in ctxs]
