"""Stream processors (``hlquant component features``) under kill -9.

Two replicas share the symbols through leases. The test plays the ingest role,
putting recorded market events on the bus; mid-way the replica owning BTC is
killed with SIGKILL. Then: no BTC features or decisions while nobody owns BTC
(agents never decide on old values), the other replica takes BTC over after the
claim timeout and resumes from the dead one's pending entries and kernel state,
and at the end every feature in Redis equals what one uninterrupted incremental
computation over all events gives.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import msgpack
import pytest
import redis

from hlquant.bus.redis_state import RedisStreamBus
from hlquant.config.compose import load_config
from hlquant.config.spec import KernelSpec
from hlquant.connectors.base import topic_for
from hlquant.connectors.replay import ReplayConnector
from hlquant.data.loaders import load_sample
from hlquant.features.kernels import parse_specs
from hlquant.features.pipeline import FeatureProcessor
from hlquant.features.specs import resolve_feature_specs
from hlquant.features.store import InMemoryFeatureStore
from hlquant.live.drill import Drill, wait_for

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/10"
SYMBOLS = ["BTC", "ETH", "SOL"]


def lease_owner(r: redis.Redis, ns: str, sym: str) -> str | None:
    v = r.get(f"{ns}:flease:{{{sym}}}")
    return v.decode() if v else None


@pytest.mark.slow
@pytest.mark.redis
def test_kill_dash_nine_a_stream_processor(tmp_path, redis_ok):
    ns = f"fp{uuid.uuid4().hex[:8]}"
    md = load_sample()
    t0 = int(md.span()[0])
    md = md.select(start=t0, end=t0 + 90 * 60_000).thin_trades(8)
    events = list(ReplayConnector(md))
    overrides = ["strategy=ma_cross", "strategy.fast=3", "strategy.slow=8", "live.url=http://127.0.0.1:9",
                 f"live.namespace={ns}", f"live.redis_url={REDIS_URL}", "live.clock=event",
                 "live.feature_replicas=2", "live.claim_ttl_ms=8000"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    drill = Drill(overrides, tmp_path, ns, REDIS_URL, ["ma_cross"], SYMBOLS, routers=0, features=2,
                  env=env, cwd=ROOT)
    r = drill.r
    bus = RedisStreamBus(r, ns)
    try:
        drill.start("features-f1")
        drill.start("features-f2")
        drill.start("agent-ma_cross")
        wait_for(lambda: all(lease_owner(r, ns, s) for s in SYMBOLS), 60, "every symbol leased",
                 state=lambda: drill.logs(600))
        wait_for(lambda: {lease_owner(r, ns, s) for s in SYMBOLS} == {"f1", "f2"}, 30, "both replicas own symbols")
        victim = lease_owner(r, ns, "BTC")
        other = "f2" if victim == "f1" else "f1"
        half = len(events) // 2

        def publish(evs, settled) -> None:
            """In steps of a few events, each processed before the next (as a live feed
            would arrive), so agents see bar after bar rather than one catch-up batch."""
            for i in range(0, len(evs), 12):
                bus.publish_many([(topic_for(ev), ev) for ev in evs[i:i + 12]])
                wait_for(settled, 60, "the step processed", poll_s=0.01, state=drill.backlog)

        def survivors_idle() -> bool:
            return not [k for k in drill.backlog() if not any(f"{{{s}}}" in k for s in orphaned)]

        publish(events[:half], drill.idle)
        ready_btc = r.xlen(f"{ns}:FeaturesReady:{{BTC}}")
        intents_btc = r.xlen(f"{ns}:Intent:{{BTC}}")
        orphaned = [s for s in SYMBOLS if lease_owner(r, ns, s) == victim]
        kept = [s for s in SYMBOLS if s not in orphaned]
        drill.kill(f"features-{victim}")
        ready_kept = {s: r.xlen(f"{ns}:FeaturesReady:{{{s}}}") for s in kept}
        outage = half + 12
        publish(events[half:outage], survivors_idle)  # the survivor's symbols keep flowing meanwhile
        assert all(r.xlen(f"{ns}:FeaturesReady:{{{s}}}") > n for s, n in ready_kept.items())

        def outage_holds() -> bool:
            """Until the takeover: no BTC features announced, no BTC decision on old values."""
            if lease_owner(r, ns, "BTC") == other:
                return True
            assert r.xlen(f"{ns}:FeaturesReady:{{BTC}}") == ready_btc
            assert r.xlen(f"{ns}:Intent:{{BTC}}") == intents_btc
            return False

        assert not outage_holds()  # BTC backlog waits for an owner
        # the survivor takes BTC over after the claim timeout and catches up from the pending entries
        wait_for(outage_holds, 30, "takeover after the claim timeout")
        wait_for(drill.idle, 60, "the backlog processed after the takeover", state=drill.backlog)
        publish(events[outage:], drill.idle)
        assert r.xlen(f"{ns}:FeaturesReady:{{BTC}}") > ready_btc
        assert r.xlen(f"{ns}:Intent:{{BTC}}") > intents_btc  # decisions resumed on fresh values
        stored = {s: {k.decode(): msgpack.unpackb(v)[0] for k, v in r.hgetall(f"{ns}:feat:{{{s}}}").items()}
                  for s in SYMBOLS}
    finally:
        drill.stop_all()
        logs = drill.logs()
        drill.cleanup()
    # one uninterrupted incremental computation over the same events
    spec = KernelSpec.from_config(load_config(overrides))
    specs, _ = resolve_feature_specs(spec.agents)
    ref = InMemoryFeatureStore({"default": 10**12})
    proc = FeatureProcessor(parse_specs(specs), ref, SYMBOLS)
    for ev in events:
        proc.on_event(ev)
    for s in SYMBOLS:
        for name in ("ema_fast", "ema_slow"):
            assert stored[s][name] == ref.get_with_ts(s, name)[0], (s, name, logs.get(f"features-{other}"))
