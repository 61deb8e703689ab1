"""Clocks. Components read time only through a Clock so that the same code
runs on the simulated clock of a backtest and the wall clock of live mode."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...

    def observe(self, ts_exch: int) -> int:
        """An event stamped ``ts_exch`` arrived: the time to act on it at."""
        ...


class SimClock:
    """Advanced explicitly by the backtest engine (event time)."""

    __slots__ = ("t",)

    def __init__(self, t: int = 0) -> None:
        self.t = t

    def now_ms(self) -> int:
        return self.t

    def advance_to(self, t: int) -> None:
        if t > self.t:
            self.t = t

    def observe(self, ts_exch: int) -> int:
        """Event time: the clock follows the events (never backwards)."""
        if ts_exch > self.t:
            self.t = ts_exch
        return self.t


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def observe(self, ts_exch: int) -> int:
        """Wall time: what the event says about time does not move this clock."""
        return time.time_ns() // 1_000_000
