"""EventBus: publish/subscribe by topic.

The in-process bus dispatches synchronously (a backtest is one thread, and a
direct call is the cheapest hop). The Redis bus (live mode) uses Streams with
consumer groups and msgpack payloads so a restarted consumer resumes.
Topic patterns: exact names, or a prefix ending in ``*`` (``Trade:*``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Protocol

from hlquant.core.events import Event

Handler = Callable[[str, Event], None]


class EventBus(Protocol):
    def publish(self, topic: str, event: Event) -> None: ...

    def subscribe(self, pattern: str, handler: Handler) -> None: ...


class InMemoryBus:
    """Synchronous in-process bus. Handlers run in subscription order."""

    def __init__(self) -> None:
        self._exact: dict[str, list[Handler]] = defaultdict(list)
        self._prefix: list[tuple[str, Handler]] = []
        self._cache: dict[str, list[Handler]] = {}
        self.published = 0

    def subscribe(self, pattern: str, handler: Handler) -> None:
        if pattern.endswith("*"):
            self._prefix.append((pattern[:-1], handler))
        else:
            self._exact[pattern].append(handler)
        self._cache.clear()

    def _handlers(self, topic: str) -> list[Handler]:
        hs = self._cache.get(topic)
        if hs is None:
            hs = list(self._exact.get(topic, ()))
            hs += [h for p, h in self._prefix if topic.startswith(p)]
            self._cache[topic] = hs
        return hs

    def publish(self, topic: str, event: Event) -> None:
        self.published += 1
        for h in self._handlers(topic):
            h(topic, event)
