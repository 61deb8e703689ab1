"""FeatureStore: the latest value and its timestamp per (symbol, feature).

Reads enforce staleness in *event time*: a value older than its limit is
refused with ``StaleFeatureError`` and counted, never silently used. Limits
come from config as ``{feature_name_or_prefix*: max_age_ms}`` with a default.
The Redis backend (live mode) keeps the same contract with hash-tagged keys
``feat:{SYMBOL}``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from hlquant.core.errors import HlquantError, StaleFeatureError


class StalenessRules:
    """Resolves the max age of a feature: exact name, then longest ``prefix*``, then default."""

    def __init__(self, rules: Mapping[str, int] | None = None, default_ms: int = 500) -> None:
        rules = dict(rules or {})
        self.default_ms = int(rules.pop("default", default_ms))
        self.exact = {k: int(v) for k, v in rules.items() if not k.endswith("*")}
        self.prefixes = sorted(
            ((k[:-1], int(v)) for k, v in rules.items() if k.endswith("*")),
            key=lambda kv: -len(kv[0]),
        )
        self._cache: dict[str, int] = {}

    def max_age(self, name: str) -> int:
        v = self._cache.get(name)
        if v is None:
            v = self.exact.get(name)
            if v is None:
                v = next((ms for p, ms in self.prefixes if name.startswith(p)), self.default_ms)
            self._cache[name] = v
        return v


class FeatureStore(Protocol):
    rules: StalenessRules
    stale_reads: Counter

    def put(self, symbol: str, name: str, value: float, ts: int) -> None: ...

    def put_many(self, symbol: str, items: Iterable[tuple[str, float]], ts: int) -> None: ...

    def get(self, symbol: str, name: str, now: int) -> float:
        """Fresh value or ``StaleFeatureError`` (also counted in ``stale_reads``)."""
        ...

    def get_with_ts(self, symbol: str, name: str) -> tuple[float, int] | None:
        """Raw latest (value, ts) with no staleness check, for monitoring."""
        ...


class InMemoryFeatureStore:
    """Dict-backed store for backtests and single-process live runs."""

    def __init__(self, rules: StalenessRules | Mapping[str, int] | None = None) -> None:
        self.rules = rules if isinstance(rules, StalenessRules) else StalenessRules(rules)
        self._v: dict[tuple[str, str], tuple[float, int]] = {}
        self.stale_reads: Counter = Counter()
        self.writes = 0
        self.bar_source: Any = None  # ColumnarFeatures / FeatureProcessor with a history feature

    def bars(self, symbol: str, n: int) -> Any:
        """The last ``n`` candles of ``symbol`` (``Bars``), from the bar source."""
        if self.bar_source is None:
            raise HlquantError("no bar history in this run: declare it with `history = N` on the agent")
        return self.bar_source.bars(symbol, n)

    def put(self, symbol: str, name: str, value: float, ts: int) -> None:
        self._v[(symbol, name)] = (value, ts)
        self.writes += 1

    def put_many(self, symbol: str, items: Iterable[tuple[str, float]], ts: int) -> None:
        v = self._v
        for name, value in items:
            v[(symbol, name)] = (value, ts)
            self.writes += 1

    def get(self, symbol: str, name: str, now: int) -> float:
        rec = self._v.get((symbol, name))
        limit = self.rules.max_age(name)
        if rec is None:
            self.stale_reads[name] += 1
            raise StaleFeatureError(symbol, name, None, limit)
        value, ts = rec
        if now - ts > limit:
            self.stale_reads[name] += 1
            raise StaleFeatureError(symbol, name, now - ts, limit)
        return value

    def get_with_ts(self, symbol: str, name: str) -> tuple[float, int] | None:
        return self._v.get((symbol, name))
