"""Agent process: decides when the stream processors say a symbol's features are ready.

It opens no exchange connection. It consumes ``FeaturesReady:{SYM}`` for its
symbols (one consumer group per agent), reads features from the Redis
feature store under the staleness rules and the account from the read model
the risk process publishes, and posts intents on the Blackboard and on
``Intent:{SYM}``. An entry is acknowledged only after the decision it
triggered was published, so a restarted agent resumes where it stopped.

An agent that reads signals (``Agent.signals``) also consumes ``Signal:{SYM}``
and the market-wide ``Signal`` stream and writes each observation into the Redis
feature store with its source time (the kernel's ``on_signal``), so staleness
rules judge it as in a backtest. A ``decide_batch`` agent decides once per read:
every symbol whose features became ready in that read, in one call; the entries
are acknowledged after that decision was published.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from hlquant.bus.redis_state import RedisStreamBus
from hlquant.kernel import MarketHandler, Role, build_kernel
from hlquant.live.roles.common import Outage, role_spec, stop_on_signals

log = logging.getLogger(__name__)


def run_agent(cfg: Any, agent_name: str, out_dir: str | Path | None = None,
              stop: threading.Event | None = None) -> dict[str, Any]:
    spec, r = role_spec(cfg)
    live = spec.live
    stop = stop_on_signals(stop)
    outage = Outage(f"agent {agent_name}", stop)
    k = build_kernel(spec, Role.AGENT, assets={}, redis=r, agent_names=[agent_name], out_dir=out_dir)
    h = MarketHandler(k)
    bus = RedisStreamBus(r, live.namespace, group=f"agent-{agent_name}", consumer="c0",
                         maxlen=live.stream_maxlen)
    for s in k.symbols:
        outage.call(bus.subscribe, f"FeaturesReady:{{{s}}}", lambda _t, ev: h.on_event(ev))
    if any(a.signals for a in k.agents):
        for topic in [f"Signal:{{{s}}}" for s in k.symbols] + ["Signal"]:
            outage.call(bus.subscribe, topic, lambda _t, ev: h.on_event(ev))
    bus.defer_ack = h.batching
    wall = live.clock == "wall"
    if wall:
        h.start(k.clock.now_ms())
    log.info("agent %s on %s: waiting for FeaturesReady", agent_name, k.symbols)

    def step() -> None:
        try:
            bus.poll(block_ms=50, count=200)
            if h.batching:  # one decide_batch call for what this read made ready
                h.flush_batches()
                bus.ack_deferred()
        except BaseException:
            bus.requeue_deferred()
            raise
        if wall:
            h.tick()

    try:
        outage.run(step)
    finally:
        k.audit.close()
    return {"agent": agent_name, "decisions": dict(k.runner.counts), "bus": dict(bus.counters),
            "stale_reads": dict(k.store.stale_reads)}
