"""Signals and batched agents in paper trading and in the multi-process topology.

A sentiment file is the recorded stream (rows stamped at wall-clock time, read as
they come due); the fake exchange replays the sample. Paper: the session merges the
file connector with the market feed and the kernel writes each Signal into the
feature store. Processes: the ingest process runs the connector and publishes
``Signal:{SYM}``; the agent process writes the observations into the Redis feature
store and decides in batches. Every wait is for a condition, with a deadline.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from pathlib import Path

import msgpack
import pandas as pd
import pytest
import redis

from hlquant.audit.log import payloads, read_audit
from hlquant.config.compose import load_config
from hlquant.connectors.replay import ReplayConnector
from hlquant.data.loaders import load_sample
from hlquant.data.series import write_signal_file
from hlquant.fakeexchange.testing import running_fake_exchange
from hlquant.live.drill import Drill, wait_for
from hlquant.live.session import run_session
from tests.conftest import require_server
from tests.live.conftest import start_drill

ROOT = Path(__file__).resolve().parents[2]
CONF = Path(__file__).resolve().parent / "conf"
REDIS_URL = "redis://127.0.0.1:6379/13"
SYMBOLS = ["BTC", "ETH"]


def sentiment_file(path: Path, seconds: float = 120.0, every_ms: int = 500) -> Path:
    """Observations from one second ago to ``seconds`` ahead; the sign flips every 2 s."""
    t0 = int(time.time() * 1000) - 1000
    rows = [{"ts": t, "symbol": s, "sentiment": 1.0 if (t - t0) // 2000 % 2 == 0 else -1.0}
            for t in range(t0, t0 + int(seconds * 1000), every_ms) for s in SYMBOLS]
    return write_signal_file(pd.DataFrame(rows), path)


def replay_sample(fx, hours: float = 12, speed: float = 2400.0):
    md = load_sample()
    t0 = int(md.span()[0])
    md = md.select(symbols=SYMBOLS, start=t0, end=t0 + int(hours * 3_600_000))
    return fx.replay(iter(ReplayConnector(md)), speed=speed)


def overrides(path: Path) -> list[str]:
    return [f"hydra.searchpath=[file://{CONF}]", "strategy=signals", "connectors=[market,sentiment_file]",
            f"connectors.sentiment_file.path={path}", "connectors.sentiment_file.poll_s=0.05"]


def test_paper_session_reads_a_recorded_series_and_decides_in_batches(tmp_path):
    path = sentiment_file(tmp_path / "sentiment.csv")
    with running_fake_exchange() as fx:
        cfg = load_config([*overrides(path), "mode=paper", f"live.url={fx.url}"])
        fut = replay_sample(fx)
        res = asyncio.run(run_session(cfg, "paper", out_dir=tmp_path / "run", duration_s=8.0))
        fut.cancel()
    e = res.engine
    assert e.handler.signals >= 20  # the state at start, then one per symbol every 500 ms
    v, ts = e.store.get_with_ts("BTC", "sentiment")
    assert v in (1.0, -1.0) and ts <= int(time.time() * 1000)
    counts = e.runner.counts
    assert counts["batches"] > 0 and counts["published"] > 0, dict(counts)
    intents = [r for r in payloads(read_audit(tmp_path / "run" / "audit")) if r["kind"] == "Intent"]
    assert intents and all(r["reason"].startswith("mood") for r in intents)
    assert len(e.fills) > 0 and res.status["feed"]["bad_messages"] == 0


def test_the_example_strategy_trades_on_paper_with_a_recorded_sentiment_series(tmp_path):
    """strategies/sentiment_trend.py as configured, its synthetic (backtest-only) series
    swapped for a recorded one under the same name."""
    path = sentiment_file(tmp_path / "sentiment.csv")
    with running_fake_exchange() as fx:
        cfg = load_config(["strategy=sentiment_trend", "strategy.symbols=[BTC,ETH]", "strategy.fast=3",
                           "strategy.slow=8", "strategy.threshold=0.5", "~connectors.sentiment",
                           "+connectors=sentiment_file", f"connectors.sentiment_file.path={path}",
                           "connectors.sentiment_file.poll_s=0.05", "mode=paper", f"live.url={fx.url}"])
        fut = replay_sample(fx)
        res = asyncio.run(run_session(cfg, "paper", out_dir=tmp_path / "run", duration_s=8.0))
        fut.cancel()
    e = res.engine
    assert e.handler.signals >= 20 and e.runner.counts["published"] > 0, dict(e.runner.counts)
    intents = [r for r in payloads(read_audit(tmp_path / "run" / "audit")) if r["kind"] == "Intent"]
    assert intents and all("sentiment" in r["reason"] for r in intents)


def test_the_classifier_trades_generated_symbols_on_paper(tmp_path):
    """strategies/ml_classifier.py (the bundled skops model, decide_batch) on five generated
    symbols listed by the fake exchange, with a recorded sentiment series."""
    from hlquant.core.assets import generated_asset, generated_symbols
    from hlquant.data.generate import generate

    syms = generated_symbols(5)
    md = generate(n_symbols=5, days=0.5, seed=7, with_trades=False, with_l2=False)
    t0 = int(time.time() * 1000) - 1000
    rows = [{"ts": t, "symbol": s, "sentiment": 1.5 if (t - t0) // 2000 % 2 == 0 else -1.5}
            for t in range(t0, t0 + 60_000, 500) for s in syms]
    path = write_signal_file(pd.DataFrame(rows), tmp_path / "sentiment.csv")
    with running_fake_exchange(assets={s: generated_asset(s) for s in syms}) as fx:
        cfg = load_config(["strategy=ml_classifier", f"strategy.symbols=[{','.join(syms)}]",
                           "~connectors.sentiment", "+connectors=sentiment_file",
                           f"connectors.sentiment_file.path={path}", "connectors.sentiment_file.poll_s=0.05",
                           "mode=paper", f"live.url={fx.url}"])
        fut = fx.replay(iter(ReplayConnector(md)), speed=2400.0)
        res = asyncio.run(run_session(cfg, "paper", out_dir=tmp_path / "run", duration_s=8.0))
        fut.cancel()
    counts = res.engine.runner.counts
    assert counts["batches"] > 0 and counts["published"] > 0, dict(counts)
    assert counts["decisions"] > counts["batches"]  # several symbols per model call
    assert {f.symbol for f in res.engine.fills} <= set(syms) and res.engine.fills


def test_a_backtest_only_series_is_refused_in_paper(tmp_path):
    from hlquant.core.errors import ConfigError

    with running_fake_exchange() as fx:
        cfg = load_config(["strategy=sentiment_trend", "mode=paper", f"live.url={fx.url}"])
        with pytest.raises(ConfigError, match="connectors.sentiment .* has no live stream"):
            asyncio.run(run_session(cfg, "paper", out_dir=tmp_path, duration_s=1.0))


@pytest.fixture()
def redis_ok():
    try:
        redis.Redis(host="127.0.0.1", port=6379).ping()
    except redis.ConnectionError:
        require_server(False, "Redis on 127.0.0.1:6379")


@pytest.mark.slow
@pytest.mark.redis
def test_processes_ingest_publishes_signals_and_the_agent_process_stores_them(tmp_path, redis_ok):
    path = sentiment_file(tmp_path / "sentiment.csv", seconds=300)
    ns = f"sig{uuid.uuid4().hex[:8]}"
    with running_fake_exchange(cash=10_000_000.0) as fx:
        fx.server.faults.weight_per_min = 10**9
        env = {**os.environ, "HLQUANT_PRIVATE_KEY": fx.agent_key, "PYTHONPATH": str(ROOT)}
        common = [*overrides(path), f"live.url={fx.url}", f"live.account_address={fx.master}",
                  f"live.namespace={ns}", f"live.redis_url={REDIS_URL}", "live.dead_mans_switch_ms=0",
                  "live.router_replicas=1", "risk.max_orders_per_s=50", "risk.order_burst=100"]
        drill = Drill(common, tmp_path, ns, REDIS_URL, ["batched"], SYMBOLS, routers=1, env=env, cwd=ROOT)
        r = drill.r
        replay = None
        try:
            start_drill(drill, fx)
            wait_for(lambda: r.xlen(f"{ns}:Signal:{{BTC}}") > 0, 30, "ingest published the series",
                     state=lambda: drill.logs(800))
            wait_for(lambda: r.hexists(f"{ns}:feat:{{BTC}}", "sentiment"), 30,
                     "the agent process wrote it into the feature store", state=lambda: drill.logs(800))
            replay = replay_sample(fx, speed=1800)
            wait_for(lambda: len(fx.server.orders_received) >= 4, 90, "orders from the batched agent",
                     state=lambda: (drill.backlog(), drill.logs(800)))
            value, ts = msgpack.unpackb(r.hget(f"{ns}:feat:{{ETH}}", "sentiment"))
        finally:
            if replay is not None:
                replay.cancel()
            drill.stop_all()
        logs = drill.logs()
        drill.cleanup()
    assert value in (1.0, -1.0) and abs(ts - time.time() * 1000) < 300_000
    agent_log = logs["agent-batched"]
    m = re.search(r"'batches': (\d+)", agent_log)
    assert m and int(m.group(1)) > 0, agent_log[-2000:]
    assert "'published': " in agent_log
    m = re.search(r"'sentiment_file': \{[^}]*'events': (\d+)", logs["ingest"])  # the ingest role's report
    assert m and int(m.group(1)) > 0, logs["ingest"][-2000:]
