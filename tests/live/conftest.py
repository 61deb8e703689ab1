"""Fixtures of the live tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from hlquant.connectors.replay import ReplayConnector
from hlquant.data.loaders import load_sample
from hlquant.live.drill import Drill, wait_for
from tests.conftest import require_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def redis_ok() -> None:
    """The shared Redis on 127.0.0.1:6379 is up (fails under CI=true when it is not)."""
    try:
        redis.Redis(host="127.0.0.1", port=6379).ping()
    except redis.ConnectionError:
        require_server(False, "Redis on 127.0.0.1:6379")


def start_drill(drill: Drill, fx) -> None:
    """Start every role of ``drill`` and wait until each has subscribed and the ingest and
    risk processes hold their exchange connections."""
    drill.start_all()
    wait_for(drill.ready, 90, "every role subscribed", state=lambda: (drill.dead(), drill.logs(800)))
    wait_for(lambda: fx.server.counters["ws_connections"] >= 2, 30, "ingest and risk connected")


@contextmanager
def processes_session(fx, ns: str, redis_url: str, out: Path, probe_dir: Path, *extra: str,
                      symbols: Sequence[str] = ("BTC", "ETH", "SOL")) -> Iterator[subprocess.Popen]:
    """`hlquant live live.topology=processes` (strategy=drill, 40 s) against the fake
    exchange ``fx``: yields the supervisor's process once every role has subscribed and
    six hours of the sample are being replayed into the exchange; on the way out the
    process is killed if still running, the replay stopped and the namespace's streams
    removed."""
    md = load_sample()
    t0 = int(md.span()[0])
    md = md.select(start=t0, end=t0 + 6 * 3_600_000)
    env = {**os.environ, "HLQUANT_PRIVATE_KEY": fx.agent_key, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen(
        [sys.executable, "-m", "hlquant.cli", "live", "strategy=drill", "data.end=2026-01-06",
         f"live.url={fx.url}", f"live.account_address={fx.master}", f"live.namespace={ns}",
         f"live.redis_url={redis_url}", "live.topology=processes", "live.duration_s=40",
         "live.dead_mans_switch_ms=0", *extra, f"hydra.run.dir={out}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    probe = Drill([], probe_dir, ns, redis_url, ["a1", "a2"], list(symbols))
    fut = None
    try:
        wait_for(probe.ready, 120, "every role subscribed", state=lambda: p.poll())
        fut = fx.replay(iter(ReplayConnector(md)), speed=1800)
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        if fut is not None:
            fut.cancel()
        probe.cleanup()
