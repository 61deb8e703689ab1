"""Clocks. Components read time only through a Clock so that the same code
runs on the simulated clock of a backtest and the wall clock of live mode."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


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


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000
