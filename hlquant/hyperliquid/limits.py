"""Hyperliquid's request budgets, tracked client-side so we never hit a 429.

IP budget: 1200 weight per minute across REST; an /exchange action weighs
``1 + floor(batch / 40)``; /info requests weigh 2 (l2Book, allMids,
clearinghouseState, orderStatus, ...), 20 otherwise, plus a per-item charge
for list answers. The address budget (10,000 + 1 per USDC traded, cancels
get more headroom) is read from ``userRateLimit`` and from 429 answers.
"""

from __future__ import annotations

import threading
import time

from hlquant.core.ratelimit import TokenBucket

IP_WEIGHT_PER_MIN = 1200
INFO_WEIGHT_2 = frozenset({"l2Book", "allMids", "clearinghouseState", "orderStatus",
                           "spotClearinghouseState", "exchangeStatus"})
PER_20_ITEMS = frozenset({"recentTrades", "historicalOrders", "userFills", "userFillsByTime",
                          "fundingHistory", "userFunding", "userNonFundingLedgerUpdates"})


def exchange_weight(batch_len: int) -> int:
    return 1 + max(int(batch_len), 1) // 40


def info_weight(req_type: str) -> int:
    if req_type == "userRole":
        return 60
    return 2 if req_type in INFO_WEIGHT_2 else 20


def items_weight(req_type: str, n_items: int) -> int:
    """Extra weight charged after a list answer."""
    if req_type in PER_20_ITEMS:
        return n_items // 20
    if req_type == "candleSnapshot":
        return n_items // 60
    return 0


class WeightLimiter:
    """Thread-safe IP weight bucket on wall time; ``acquire`` blocks until the weight fits."""

    def __init__(self, per_min: float = IP_WEIGHT_PER_MIN, clock_ms=None) -> None:
        self._clock = clock_ms or (lambda: int(time.time() * 1000))
        self.bucket = TokenBucket(per_min / 60.0, per_min, self._clock())
        self._lock = threading.Lock()
        self.waited_ms = 0
        self.charged = 0

    def acquire(self, weight: int, block: bool = True) -> bool:
        while True:
            with self._lock:
                now = self._clock()
                if self.bucket.take(weight, now):
                    self.charged += weight
                    return True
                wait = self.bucket.wait_ms(weight, now)
            if not block:
                return False
            self.waited_ms += wait
            time.sleep(wait / 1000.0)

    def charge(self, weight: int) -> None:
        """Charge weight after the fact (per-item costs); may go into debt."""
        with self._lock:
            now = self._clock()
            self.bucket.take(0, now)
            self.bucket.tokens -= weight
            self.charged += weight

    def penalize(self) -> None:
        """A 429 from the server: our view was optimistic; empty the bucket."""
        with self._lock:
            self.bucket.take(0, self._clock())
            self.bucket.tokens = min(self.bucket.tokens, 0.0)


class AddressBudget:
    """Per-address action budget: our count since the exchange's last ``userRateLimit``.

    The exchange grants 10,000 requests plus one per USDC traded, so the cap grows
    as we trade; our own count only grows. A client that never re-reads the cap
    stops itself after 10,000 orders however much it traded (the live latency
    bench stalled at tick 10,000 this way): ``checked_ms`` says when it was last read.
    """

    #: once spent, the exchange still lets one request through per this many ms
    SPENT_PACE_MS = 10_000

    def __init__(self) -> None:
        self.used = 0
        self.cap = 10_000
        self.checked_ms = 0
        self.paced_ms = 0  # when we last used the spent address's one request per 10 s

    def pace(self, now_ms: int) -> bool:
        """A spent address may send one request per 10 s (its only way to trade, and so to
        earn budget, again): True, and the slot is taken, when it is due."""
        if now_ms - self.paced_ms < self.SPENT_PACE_MS:
            return False
        self.paced_ms = now_ms
        return True

    def update(self, used: int, cap: int, now_ms: int = 0) -> None:
        self.used, self.cap, self.checked_ms = int(used), int(cap), int(now_ms)

    def spend(self, n: int) -> None:
        self.used += n

    @property
    def remaining(self) -> int:
        return self.cap - self.used
