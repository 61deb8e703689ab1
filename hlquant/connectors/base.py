"""Connector interface: a data source plugs in by implementing three methods.

``connect()`` opens the source, ``normalize(raw)`` turns one raw message into
core events (each with exchange and receive time), ``emit(events)`` publishes
them on the bus. New sources (sentiment feeds, other venues, indexers) need
no change in the core.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from hlquant.bus.base import EventBus
from hlquant.core.errors import ConfigError
from hlquant.core.events import Event, Signal

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from hlquant.data.market import MarketData
    from hlquant.data.series import SignalSeries


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


class SignalConnector(Connector):
    """A source of :class:`~hlquant.core.events.Signal` events (data beyond the exchange).

    The same connector serves every mode: a backtest asks ``history(market)`` for the
    whole series at once (columnar; merged with the market data by receive time),
    paper and live sessions and the ingest process of ``live.topology=processes``
    iterate ``events(stop)``. A connector that has no history (a live-only API) or no
    live stream (a series that knows the future) says so with a ``ConfigError``."""

    name = "signals"
    historical = True  # has ``history`` (backtests)
    live = True  # has ``events`` (paper, live, ingest)

    def signal_names(self) -> set[str] | None:
        """The series this connector emits, when known before it runs (None: unknown)."""
        return None

    def history(self, market: MarketData) -> SignalSeries:
        """The whole series for a backtest over ``market``."""
        raise ConfigError(f"connector {self.name!r} has no history, so it cannot run in a backtest; "
                          "record it (type: file) and replay the file")

    async def events(self, stop: asyncio.Event) -> AsyncIterator[Signal]:
        """Signals as they arrive, until ``stop`` is set (paper, live, ingest)."""
        raise ConfigError(f"connector {self.name!r} has no live stream (backtests only)")
        yield  # pragma: no cover  (makes this an async generator)


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; True when stopped."""
    if seconds <= 0:
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


_DONE = object()


async def merge_events(sources: Sequence[AsyncIterator[Event]], maxsize: int = 10_000
                       ) -> AsyncIterator[Event]:
    """The events of several async sources, each in its own order, as they come.

    ``sources[0]`` is the primary (the market feed): the merge ends when it ends and
    its failure is the merge's. A secondary source (an extra connector) that fails is
    logged and dropped while the others go on: its series goes stale and agents
    reading it skip their decisions (counted), they never act on old values."""
    q: asyncio.Queue = asyncio.Queue(maxsize)

    async def pump(i: int, it: AsyncIterator[Event]) -> None:
        try:
            async for ev in it:
                await q.put((i, ev))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # reported through the queue, in order
            await q.put((i, e))
        await q.put((i, _DONE))

    tasks = [asyncio.ensure_future(pump(i, it)) for i, it in enumerate(sources)]
    try:
        while True:
            i, item = await q.get()
            if item is _DONE:
                if i == 0:
                    return
                continue
            if isinstance(item, BaseException):
                if i == 0:
                    raise item
                log.error("data source %d stopped: %s: %s (its series will go stale)", i,
                          type(item).__name__, item)
                continue
            yield item
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
