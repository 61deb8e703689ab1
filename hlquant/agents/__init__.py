"""Agents: the strategy-facing API (Agent, Context, AgentConfig) and the Blackboard."""

from hlquant.agents.base import Agent, AgentConfig, Context
from hlquant.agents.blackboard import (
    Blackboard,
    HeartbeatStore,
    InMemoryBlackboard,
    InMemoryHeartbeats,
    intent_key,
)
from hlquant.core.events import Intent, Side, Tif

__all__ = [
    "Agent",
    "AgentConfig",
    "Context",
    "Intent",
    "Side",
    "Tif",
    "Blackboard",
    "HeartbeatStore",
    "InMemoryBlackboard",
    "InMemoryHeartbeats",
    "intent_key",
]
