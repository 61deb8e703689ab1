"""AgentRunner: calls agents, applies debounce, posts intents, keeps heartbeats.

The runner is the only place that knows about the Blackboard and the risk
engine; strategies only see their Context. An agent is not called for a
symbol until every feature it declared has a warm value there (producers
write NaN during warm-up; ``warmup_skipped``); decisions that would read a
stale feature are skipped and counted (never taken on stale data); intents equal to
the agent's previous target are not re-published; intents inside the
agent's debounce window are dropped and counted.

A strategy that raises, or returns something that is not an Intent, is
contained here: the failure is audited (``AgentError``: agent, symbol, the
error and the last frames of its traceback) and counted, then the policy
applies: ``raise`` stops the run with a one-line ``AgentFailure`` (research),
``quarantine`` stops the agent and has its intents and orders cancelled as
for a lost heartbeat while the others go on (paper and live).
"""

from __future__ import annotations

import traceback
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hlquant.agents.base import Agent, Context, SymbolContext
from hlquant.agents.blackboard import Blackboard, HeartbeatStore
from hlquant.audit.log import AuditLog
from hlquant.core.errors import AgentFailure, StaleFeatureError
from hlquant.core.events import AgentError, Intent

ON_ERROR = ("raise", "quarantine")


class AgentRunner:
    def __init__(
        self,
        agents: Sequence[Agent],
        blackboard: Blackboard,
        heartbeats: HeartbeatStore,
        features: Any,
        account: Any,
        prices: Callable[[str], float],
        on_intent: Callable[[Intent], Any],
        audit: AuditLog,
        aliases: Mapping[str, Mapping[str, str]] | None = None,
        *,
        on_error: str = "raise",
        on_quarantine: Callable[[str], Any] | None = None,
        declared: frozenset[str] | None = None,
    ) -> None:
        """``account``: what ``ctx.position()``/``equity``/``open_orders()`` read
        (hlquant.agents.account). ``on_error``: ``raise`` or ``quarantine`` (module
        docstring); ``on_quarantine(agent)`` cancels a quarantined agent's intents and
        orders. ``declared``: feature names readable by every agent (default: each
        agent's own)."""
        names = [a.name for a in agents]
        if len(set(names)) != len(names):
            raise ValueError(f"agent names must be unique, got {names}")
        if on_error not in ON_ERROR:
            raise ValueError(f"agents.on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.agents = list(agents)
        self.bb = blackboard
        self.hb = heartbeats
        self.on_intent = on_intent
        self.audit = audit
        self.on_error = on_error
        self.on_quarantine = on_quarantine
        aliases = aliases or {}
        self.ctx = {
            a.name: Context(a, features, account, prices, aliases.get(a.name), declared) for a in agents
        }
        self._by_trigger: dict[tuple[str, str], list[Agent]] = {}
        for a in agents:
            for s in a.symbols:
                self._by_trigger.setdefault((a.config.trigger, s), []).append(a)
        self._last: dict[tuple[str, str], tuple[int, tuple]] = {}
        self._next_beat: dict[str, int] = {}
        self._gate = {a.name: tuple(dict.fromkeys(
            (aliases.get(a.name) or {}).get(f["name"], f["name"]) for f in a.feature_specs()))
            for a in agents}
        self._features = features
        self._warm: set[tuple[str, str]] = set()  # (agent, symbol) past its warm-up
        self.counts: Counter = Counter()
        self.warmup_by_agent: Counter = Counter()
        self.stale_by_agent: Counter = Counter()
        self.errors_by_agent: Counter = Counter()
        self.next_beat_due = 0
        # decide_batch agents: the symbols that fired, decided together by flush_batches
        self.batching = frozenset(a.name for a in agents if a.batched)
        self.pending: dict[str, dict[str, None]] = {}
        self.pending_kind: str | None = None
        self._sym_ctx: dict[tuple[str, str], SymbolContext] = {}

    def triggers(self) -> set[tuple[str, str]]:
        return set(self._by_trigger)

    def agents_for(self, kind: str, symbol: str) -> list[Agent]:
        return self._by_trigger.get((kind, symbol), [])

    def start(self, now: int) -> None:
        for a in self.agents:
            ctx = self.ctx[a.name]
            ctx.now = now
            try:
                a.setup(ctx)
            except Exception as e:  # a strategy bug in setup(): same policy as in decide()
                self._failed(a, "", now, e)
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
                if a.name in self.batching:  # decided with the rest of its symbols (flush_batches)
                    self.pending.setdefault(a.name, {})[symbol] = None
                    self.pending_kind = kind
                    continue
                n += self.decide(a, symbol, now)
        return n

    def flush_batches(self, now: int) -> int:
        """Call ``decide_batch`` once for each agent with symbols waiting, with their
        contexts in the order they fired; returns intents published."""
        pending, self.pending, self.pending_kind = self.pending, {}, None
        n = 0
        for a in self.agents:
            syms = pending.get(a.name)
            if syms and a.alive:
                n += self.decide_batch(a, list(syms), now)
        return n

    def decide_batch(self, agent: Agent, symbols: Sequence[str], now: int) -> int:
        self.counts["decisions"] += len(symbols)
        ctxs = []
        for s in symbols:
            if (agent.name, s) not in self._warm:  # the same warm-up gate as decide()
                if not self._is_warm(agent.name, s):
                    self.counts["warmup_skipped"] += 1
                    self.warmup_by_agent[agent.name] += 1
                    continue
                self._warm.add((agent.name, s))
            c = self._sym_ctx.get((agent.name, s))
            if c is None:
                c = self._sym_ctx[(agent.name, s)] = SymbolContext.of(self.ctx[agent.name], s)
            c.now, c.stale = now, False
            ctxs.append(c)
        if not ctxs:
            return 0
        self.counts["batches"] += 1
        try:
            out = agent.decide_batch(ctxs)
        except StaleFeatureError:  # not decided on stale data: every symbol of the batch skipped
            self.counts["stale_skipped"] += len(ctxs)
            self.stale_by_agent[agent.name] += len(ctxs)
            return 0
        except Exception as e:
            return self._failed(agent, ",".join(symbols), now, e)
        out = list(out) if isinstance(out, (list, tuple)) else out
        if not isinstance(out, list) or len(out) != len(ctxs):
            got = f"{len(out)} entries" if isinstance(out, list) else type(out).__name__
            return self._failed(agent, ",".join(symbols), now, TypeError(
                f"decide_batch() returned {got} for {len(ctxs)} contexts; expected one Intent or None each"))
        n = 0
        for c, intent in zip(ctxs, out, strict=True):
            if c.stale:
                self.counts["stale_skipped"] += 1
                self.stale_by_agent[agent.name] += 1
                continue
            if intent is None:
                continue
            if not isinstance(intent, Intent):
                return n + self._failed(agent, c.symbol, now, TypeError(
                    f"decide_batch() returned {type(intent).__name__}, expected an Intent or None"))
            n += self.publish(intent)
        return n

    def decide(self, agent: Agent, symbol: str, now: int) -> int:
        ctx = self.ctx[agent.name]
        ctx.now = now
        ctx.symbol = symbol
        self.counts["decisions"] += 1
        if (agent.name, symbol) not in self._warm:
            if not self._is_warm(agent.name, symbol):
                self.counts["warmup_skipped"] += 1
                self.warmup_by_agent[agent.name] += 1
                return 0
            self._warm.add((agent.name, symbol))
        try:
            intent = agent.decide(ctx)
        except StaleFeatureError:
            self.counts["stale_skipped"] += 1
            self.stale_by_agent[agent.name] += 1
            return 0
        except Exception as e:  # a strategy bug: contained, audited, then the policy
            return self._failed(agent, symbol, now, e)
        if intent is None:
            return 0
        if not isinstance(intent, Intent):
            return self._failed(agent, symbol, now, TypeError(
                f"decide() returned {type(intent).__name__}, expected an Intent (ctx.target/ctx.order) or None"))
        return self.publish(intent)

    def _is_warm(self, name: str, symbol: str) -> bool:
        """Every feature the agent declared has a value other than NaN for ``symbol``."""
        get = self._features.get_with_ts
        for f in self._gate[name]:
            rec = get(symbol, f)
            if rec is None or rec[0] != rec[0]:
                return False
        return True

    def _failed(self, agent: Agent, symbol: str, now: int, e: BaseException) -> int:
        self.counts["errors"] += 1
        self.errors_by_agent[agent.name] += 1
        msg = f"{type(e).__name__}: {e}".splitlines()[0] if str(e) else type(e).__name__
        tb = "".join(traceback.format_tb(e.__traceback__, limit=-3)) if e.__traceback__ else ""
        self.audit.record(AgentError(now, now, agent.name, symbol, msg, tb[-2000:], self.on_error))
        if self.on_error == "raise":
            where = f"on {symbol} at {now}" if symbol else "in setup()"
            raise AgentFailure(f"agent {agent.name} failed {where}: {msg}") from e
        self.quarantine(agent.name)
        return 0

    def quarantine(self, name: str) -> None:
        """Stop an agent for good and have its intents and orders cancelled."""
        self.kill(name)
        self.counts["quarantined"] += 1
        if self.on_quarantine is not None:
            self.on_quarantine(name)

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
        self.bb.post(intent)
        self.audit.record(intent)
        self.on_intent(intent)
        # noted only once out: a publish that failed (Redis went away) is made again when
        # the bus redelivers the trigger, not taken for an unchanged target
        self._last[key] = (intent.ts_exch, sig)
        self.counts["published"] += 1
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
