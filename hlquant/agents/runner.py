"""AgentRunner: calls agents, applies debounce, posts intents, keeps heartbeats.

The runner is the only place that knows about the Blackboard and the risk
engine; strategies only see their Context. Decisions that would read a stale
feature are skipped and counted (never taken on stale data); intents equal to
the agent's previous target are not re-published; intents inside the
agent's debounce window are dropped and counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hlquant.agents.base import Agent, Context
from hlquant.agents.blackboard import Blackboard, HeartbeatStore
from hlquant.audit.log import AuditLog
from hlquant.core.errors import StaleFeatureError
from hlquant.core.events import Intent


class AgentRunner:
    def __init__(
        self,
        agents: Sequence[Agent],
        blackboard: Blackboard,
        heartbeats: HeartbeatStore,
        features: Any,
        portfolio: Any,
        prices: Callable[[str], float],
        on_intent: Callable[[Intent], Any],
        audit: AuditLog,
        aliases: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        names = [a.name for a in agents]
        if len(set(names)) != len(names):
            raise ValueError(f"agent names must be unique, got {names}")
        self.agents = list(agents)
        self.bb = blackboard
        self.hb = heartbeats
        self.on_intent = on_intent
        self.audit = audit
        aliases = aliases or {}
        self.ctx = {
            a.name: Context(a, features, portfolio, prices, aliases.get(a.name)) for a in agents
        }
        self._by_trigger: dict[tuple[str, str], list[Agent]] = {}
        for a in agents:
            for s in a.symbols:
                self._by_trigger.setdefault((a.config.trigger, s), []).append(a)
        self._last: dict[tuple[str, str], tuple[int, tuple]] = {}
        self._next_beat: dict[str, int] = {}
        self.counts: Counter = Counter()
        self.stale_by_agent: Counter = Counter()
        self.next_beat_due = 0

    def triggers(self) -> set[tuple[str, str]]:
        return set(self._by_trigger)

    def agents_for(self, kind: str, symbol: str) -> list[Agent]:
        return self._by_trigger.get((kind, symbol), [])

    def start(self, now: int) -> None:
        for a in self.agents:
            ctx = self.ctx[a.name]
            ctx.now = now
            a.setup(ctx)
        self.heartbeat(now)

    # --- decisions -----------------------------------------------------------
    def on_trigger(self, kind: str, symbol: str, now: int) -> int:
        """Call every agent triggered by (kind, symbol); returns intents published."""
        agents = self._by_trigger.get((kind, symbol))
        if not agents:
            return 0
        n = 0
        for a in agents:
            if a.alive:
                n += self.decide(a, symbol, now)
        return n

    def decide(self, agent: Agent, symbol: str, now: int) -> int:
        ctx = self.ctx[agent.name]
        ctx.now = now
        ctx.symbol = symbol
        try:
            intent = agent.decide(ctx)
        except StaleFeatureError:
            self.counts["stale_skipped"] += 1
            self.stale_by_agent[agent.name] += 1
            return 0
        if intent is None:
            return 0
        return self.publish(intent)

    def publish(self, intent: Intent) -> int:
        key = (intent.agent, intent.symbol)
        sig = (
            ("T", round(intent.target, 12))
            if intent.is_target
            else ("O", intent.side, intent.size, intent.px, intent.tif, intent.reduce_only, intent.trigger_px, intent.intent_id)
        )
        last = self._last.get(key)
        if last is not None:
            if intent.is_target and last[1] == sig:
                self.counts["unchanged"] += 1
                return 0
            debounce = self.ctx[intent.agent].agent.config.debounce_ms
            if debounce and intent.ts_exch - last[0] < debounce:
                self.counts["debounced"] += 1
                return 0
        self._last[key] = (intent.ts_exch, sig)
        self.counts["published"] += 1
        self.bb.post(intent)
        self.audit.record(intent)
        self.on_intent(intent)
        return 1

    # --- liveness ----------------------------------------------------------
    def heartbeat(self, now: int) -> None:
        """Beat for every live agent whose interval elapsed (event time)."""
        nxt = None
        for a in self.agents:
            due = self._next_beat.get(a.name, now)
            if a.alive and now >= due:
                self.hb.beat(a.name, now, a.config.heartbeat_ttl_ms)
                due = now + a.config.heartbeat_ms
                self._next_beat[a.name] = due
            if a.alive:
                nxt = due if nxt is None else min(nxt, due)
        self.next_beat_due = nxt if nxt is not None else 2**62

    def kill(self, name: str) -> None:
        """Stop an agent (fault injection / operator): no more decisions or heartbeats."""
        for a in self.agents:
            if a.name == name:
                a.alive = False
                return
        raise KeyError(f"no agent named {name!r}")
