"""Connector interface: a data source plugs in by implementing three methods.

``connect()`` opens the source, ``normalize(raw)`` turns one raw message into
core events (each with exchange and receive time), ``emit(events)`` publishes
them on the bus. New sources (sentiment feeds, other venues, indexers) need
no change in the core.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from hlquant.bus.base import EventBus
from hlquant.core.events import Event


def topic_for(event: Event) -> str:
    """Bus topic of an event: ``<kind>:{<SYMBOL>}`` (hash-tagged for Redis Cluster)."""
    sym = getattr(event, "symbol", None)
    return f"{event.kind}:{{{sym}}}" if sym else event.kind


class Connector(ABC):
    name: str = "connector"

    def __init__(self, bus: EventBus | None = None) -> None:
        self.bus = bus
        self.counters: dict[str, int] = {"messages": 0, "events": 0, "bad_messages": 0}

    @abstractmethod
    def connect(self) -> Any:
        """Open the source (may be a coroutine for network connectors)."""

    @abstractmethod
    def normalize(self, raw: Any) -> list[Event]:
        """Turn one raw message into zero or more core events."""

    def emit(self, events: Iterable[Event]) -> int:
        """Publish events on the bus, one topic per kind and symbol."""
        if self.bus is None:
            raise RuntimeError(f"{self.name}: emit() needs a bus")
        n = 0
        for ev in events:
            self.bus.publish(topic_for(ev), ev)
            n += 1
        self.counters["events"] += n
        return n
