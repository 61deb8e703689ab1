"""Blackboard: the current intent of every agent, per symbol.

Layout (the same in memory and in Redis): a hash ``intent:{SYMBOL}`` whose
fields are agent names and whose values are the agent's latest Intent. The
risk engine reads the whole hash to net the intents of several agents on one
symbol. Heartbeats live beside it as ``hb:{AGENT}`` with an expiry.
"""

from __future__ import annotations

from typing import Protocol

from hlquant.core.events import Intent


def intent_key(symbol: str) -> str:
    return f"intent:{{{symbol}}}"


class Blackboard(Protocol):
    def post(self, intent: Intent) -> None:
        """Set the agent's field in ``intent:{symbol}`` (replacing its previous intent)."""
        ...

    def intents(self, symbol: str) -> dict[str, Intent]:
        """All current intents on a symbol, by agent."""
        ...

    def remove(self, symbol: str, agent: str) -> Intent | None: ...

    def remove_agent(self, agent: str) -> list[Intent]:
        """Drop every intent of an agent (heartbeat lost); returns what was removed."""
        ...

    def symbols(self) -> list[str]: ...


class InMemoryBlackboard:
    def __init__(self) -> None:
        self._h: dict[str, dict[str, Intent]] = {}

    def post(self, intent: Intent) -> None:
        self._h.setdefault(intent.symbol, {})[intent.agent] = intent

    def intents(self, symbol: str) -> dict[str, Intent]:
        return dict(self._h.get(symbol, {}))

    def remove(self, symbol: str, agent: str) -> Intent | None:
        return self._h.get(symbol, {}).pop(agent, None)

    def remove_agent(self, agent: str) -> list[Intent]:
        out = []
        for h in self._h.values():
            it = h.pop(agent, None)
            if it is not None:
                out.append(it)
        return out

    def symbols(self) -> list[str]:
        return [s for s, h in self._h.items() if h]


class HeartbeatStore(Protocol):
    def beat(self, agent: str, now: int, ttl_ms: int) -> None: ...

    def alive(self, agent: str, now: int) -> bool: ...

    def expire(self, agent: str) -> None:
        """Declare the agent dead now (quarantine)."""
        ...

    def last_seen(self, agent: str) -> int | None: ...

    def agents(self) -> list[str]: ...


class InMemoryHeartbeats:
    """Heartbeat = (last beat, expiry) per agent, in event time."""

    def __init__(self) -> None:
        self._hb: dict[str, tuple[int, int]] = {}

    def beat(self, agent: str, now: int, ttl_ms: int) -> None:
        self._hb[agent] = (now, now + ttl_ms)

    def alive(self, agent: str, now: int) -> bool:
        rec = self._hb.get(agent)
        return rec is not None and now <= rec[1]

    def expire(self, agent: str) -> None:
        rec = self._hb.get(agent)
        self._hb[agent] = (rec[0] if rec else 0, -1)

    def last_seen(self, agent: str) -> int | None:
        rec = self._hb.get(agent)
        return None if rec is None else rec[0]

    def agents(self) -> list[str]:
        return list(self._hb)
