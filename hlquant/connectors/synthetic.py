"""Synthetic sentiment as a connector: the example strategy runs offline.

The series (``hlquant.data.sentiment``) is made from the backtest's own market
data and is correlated with *future* returns by construction, so it has a history
and no live stream: in paper or live trading use a real source (``type: file`` or
``type: http``) under the same series name.
"""

from __future__ import annotations

from hlquant.bus.base import EventBus
from hlquant.connectors.base import SignalConnector
from hlquant.core.errors import ConfigError
from hlquant.core.events import Signal
from hlquant.data.market import MarketData
from hlquant.data.sentiment import synthetic_sentiment_series
from hlquant.data.series import SignalSeries


class SyntheticSentimentConnector(SignalConnector):
    """``synthetic_sentiment(market, corr, horizon_min, every_min, lag_ms, seed)`` named ``name``."""

    name = "synthetic_sentiment"
    live = False

    def __init__(self, name: str = "sentiment", corr: float = 0.3, horizon_min: int = 30,
                 every_min: int = 5, lag_ms: int = 30_000, seed: int = 0, *,
                 bus: EventBus | None = None) -> None:
        super().__init__(bus)
        if not -1.0 <= float(corr) <= 1.0:
            raise ConfigError(f"synthetic_sentiment: corr must be in [-1, 1], got {corr!r}")
        self.series_name, self.corr, self.horizon_min = str(name), float(corr), int(horizon_min)
        self.every_min, self.lag_ms, self.seed = int(every_min), int(lag_ms), int(seed)

    def signal_names(self) -> set[str] | None:
        return {self.series_name}

    def connect(self) -> None:
        """Nothing to open: the series is computed from the market data (``history``)."""

    def normalize(self, raw: Signal) -> list[Signal]:
        self.counters["messages"] += 1
        return [raw]

    def history(self, market: MarketData) -> SignalSeries:
        return synthetic_sentiment_series(market, self.corr, self.horizon_min, self.every_min,
                                          self.lag_ms, self.seed, self.series_name)

    async def events(self, stop):  # type: ignore[override]
        raise ConfigError(f"synthetic_sentiment {self.series_name!r} knows the future: backtests only; "
                          "in paper/live give the series from a real source (type: file or http)")
        yield  # pragma: no cover
