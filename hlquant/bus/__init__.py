"""Event bus backends: in-process (sim) and Redis Streams (live)."""

from hlquant.bus.base import EventBus, Handler, InMemoryBus

__all__ = ["EventBus", "Handler", "InMemoryBus"]
