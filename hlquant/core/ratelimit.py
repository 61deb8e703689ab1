"""Token bucket on an injected clock (event time in backtests, wall time live)."""

from __future__ import annotations


class TokenBucket:
    """``rate`` tokens per second up to ``capacity``; ``take(n, now_ms)`` spends if it can."""

    __slots__ = ("rate", "capacity", "tokens", "t")

    def __init__(self, rate: float, capacity: float, now_ms: int = 0) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("token bucket rate and capacity must be positive")
        self.rate, self.capacity = float(rate), float(capacity)
        self.tokens, self.t = float(capacity), now_ms

    def _refill(self, now_ms: int) -> None:
        if now_ms > self.t:
            self.tokens = min(self.capacity, self.tokens + (now_ms - self.t) * self.rate / 1000.0)
            self.t = now_ms

    def take(self, n: float, now_ms: int) -> bool:
        self._refill(now_ms)
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    def available(self, now_ms: int) -> float:
        self._refill(now_ms)
        return self.tokens

    def wait_ms(self, n: float, now_ms: int) -> int:
        """Milliseconds until ``n`` tokens are available."""
        self._refill(now_ms)
        return 0 if self.tokens >= n else int((n - self.tokens) * 1000.0 / self.rate) + 1
