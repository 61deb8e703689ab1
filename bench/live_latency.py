"""Tick-to-order latency of the live path, every hop real.

    .venv/bin/python bench/live_latency.py [--ticks 10000] [--topology single|processes|both]

A fake Hyperliquid exchange (this process, its own thread and event loop) publishes
a trade on its WebSocket; hlquant turns it into a signed order that reaches the
exchange. Latency = order received by the exchange - tick handed to the exchange
for sending, one tick in flight at a time (the exchange has answered the previous
order before the next tick). Every tick must be answered.

- ``single``: ``hlquant live`` in one process (the kernel's LiveEngine): WebSocket
  feed -> incremental feature -> agent -> risk -> router -> signed order.
- ``processes``: ``live.topology=processes``, each role its own OS process on Redis:
  ingest (the one market-data connection) -> Trade:{BTC} stream -> stream processor
  (feature in the Redis store, FeaturesReady:{BTC}) -> agent -> Intent:{BTC} -> risk
  -> OrderRequest:{BTC} -> router replica -> signed order. Stage times come from the
  streams' entry ids (Redis server clock). ``--agents`` idle agents run beside the
  trading one: the exchange still sees one market-data connection (plus the risk
  process's user channel).

Then: RedisFeatureStore pipelined writes/s beside raw redis-py pipelined SET.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUDGET_MS = 500.0
RISK = dict(max_orders_per_s=1e6, order_burst=10**6, max_notional_per_symbol=1e9, max_gross_exposure=1e9,
            max_order_notional=1e9, max_leverage=50, max_price_age_ms=5_000)


def pct(lat: np.ndarray, title: str, extra: str = "") -> None:
    print(f"== {title}: {len(lat):,} ticks {extra}==")
    print(f"p50 {np.percentile(lat, 50):.2f} ms   p90 {np.percentile(lat, 90):.2f} ms   "
          f"p99 {np.percentile(lat, 99):.2f} ms   max {lat.max():.2f} ms   (budget {BUDGET_MS:.0f} ms)")


def drive(fx, ticks: int, warmup: int, settle_s: float = 0.002) -> tuple[list[int], list[int], int]:
    """Publish trades one at a time; returns (latencies ns, tick wall ms, ticks sent)."""
    from hlquant.core.events import Side, Trade

    got = threading.Event()
    arrival = [0]

    def hook(_wire, t_ns):
        arrival[0] = t_ns
        got.set()

    fx.server.order_hooks.append(hook)
    lat, walls = [], []
    sent = 0
    for i in range(ticks + warmup):
        got.clear()
        now = int(time.time() * 1000)
        t0 = time.perf_counter_ns()
        fx.server.publish(Trade(now, now, "BTC", Side.BUY if i % 2 else Side.SELL, 100_000.0, 0.01, i + 1))
        sent += 1
        if i < warmup:  # the feature warms up first (no decision before it is warm)
            if not got.wait(0.5):
                continue
        elif not got.wait(5):
            print(f"tick {i}: no order within 5 s", file=sys.stderr)
            break
        if i >= warmup:
            lat.append(arrival[0] - t0)
            walls.append(now)
        n = len(fx.server.orders_received)
        deadline = time.monotonic() + 5
        while len(fx.server.orders_received) < n + (0 if n else 1) and time.monotonic() < deadline:
            time.sleep(0.0005)  # the exchange has answered this order
        time.sleep(settle_s)
    return lat, walls, sent


def single(args, fx) -> None:
    from bench.latency_agents import TickFlip
    from hlquant.agents import AgentConfig
    from hlquant.hyperliquid.exchange import ExchangeClient
    from hlquant.hyperliquid.info import InfoClient
    from hlquant.hyperliquid.limits import WeightLimiter
    from hlquant.hyperliquid.signing import Signer
    from hlquant.hyperliquid.venue import HyperliquidVenue
    from hlquant.hyperliquid.ws import HyperliquidFeed, user_subscriptions
    from hlquant.live.engine import LiveEngine
    from hlquant.risk.engine import RiskConfig
    from hlquant.router.router import RouterConfig

    info = InfoClient(fx.url, limiter=WeightLimiter(per_min=10**9))  # measures the path, not the limit
    venue = HyperliquidVenue(info, ExchangeClient(Signer(fx.agent_key, fx.master), info.assets(), fx.url,
                                                  limiter=info.limiter), ["BTC"])
    agent = TickFlip(AgentConfig("tick", ("BTC",), trigger="trade", heartbeat_ms=1000, heartbeat_ttl_ms=10_000))
    engine = LiveEngine.for_agents([agent], venue, mode="live", risk=RiskConfig(**RISK),
                                   router=RouterConfig(orders_per_s=1e6, burst=10**6, weight_per_min=1e9),
                                   staleness={"default": 5_000})
    feed = HyperliquidFeed(fx.ws_url, [{"type": "trades", "coin": "BTC"}, *user_subscriptions(fx.master)],
                           info=info)
    stop = asyncio.Event()
    box: dict = {}

    async def consume():
        async for ev in feed.events(stop):
            if ev.kind == "Trade":
                engine.on_event(ev)
            else:
                venue.on_exchange_event(ev)

    async def run():
        engine.start()  # as a session does
        task = asyncio.create_task(consume())
        await asyncio.wait_for(feed.connected.wait(), 10)
        loop = asyncio.get_running_loop()

        def driver():
            box["res"] = drive(fx, args.ticks, 200)
            loop.call_soon_threadsafe(stop.set)

        th = threading.Thread(target=driver)
        t = time.perf_counter()
        th.start()
        await task
        th.join()
        box["wall"] = time.perf_counter() - t

    asyncio.run(run())
    lat, _, sent = box["res"]
    pct(np.array(lat) / 1e6, "single process (hlquant live, topology=single)",
        f"answered of {sent - 200:,} sent, {box['wall']:.1f} s ")


def processes(args, fx) -> None:
    from hlquant.live.drill import Drill, wait_for

    ns = f"lat{uuid.uuid4().hex[:6]}"
    conf = Path(tempfile.mkdtemp(prefix="hlq-bench-")) / "strategy"
    conf.mkdir()
    agents = ["tick"] + [f"idle{i}" for i in range(args.agents)]
    lines = ["name: bench_tick", "agents:",
             "  - {cls: 'bench.latency_agents:TickFlip', name: tick, symbols: [BTC], trigger: trade}"]
    lines += [f"  - {{cls: 'bench.latency_agents:Idle', name: idle{i}, symbols: [BTC], trigger: trade}}"
              for i in range(args.agents)]
    (conf / "bench_tick.yaml").write_text("\n".join(lines) + "\n")
    overrides = [f"hydra.searchpath=[file://{conf.parent}]", "strategy=bench_tick", f"live.url={fx.url}",
                 f"live.account_address={fx.master}", f"live.namespace={ns}", f"live.redis_url={args.redis}",
                 "live.dead_mans_switch_ms=0", "live.router_replicas=1", "features.staleness.default=5000",
                 *[f"risk.{k}={v}" for k, v in RISK.items()], "router.orders_per_s=1000000",
                 "router.burst=1000000", "router.weight_per_min=1000000000"]
    env = {**os.environ, "HLQUANT_PRIVATE_KEY": fx.agent_key, "PYTHONPATH": str(ROOT)}
    out = Path(tempfile.mkdtemp(prefix="hlq-bench-run-"))
    drill = Drill(overrides, out, ns, args.redis, agents, ["BTC"], routers=1, features=1, env=env, cwd=ROOT)
    drill.start_all()
    try:
        wait_for(drill.ready, 120, "every role subscribed", state=lambda: (drill.dead(), drill.logs(400)))
        wait_for(lambda: fx.server.counters["ws_connections"] >= 2, 30, "ingest and risk connected")
        lat, walls, sent = drive(fx, args.ticks, 200)
        conns = fx.server.counters["ws_connections"]
        r = drill.r

        def ids(topic: str) -> np.ndarray:
            return np.array([int(i.decode().split("-")[0]) for i, _ in r.xrange(f"{ns}:{topic}")])

        stages = {t: ids(t) for t in ("Trade:{BTC}", "FeaturesReady:{BTC}", "Intent:{BTC}", "OrderRequest:{BTC}")}
    finally:
        drill.stop_all()
        drill.cleanup()
    pct(np.array(lat) / 1e6, f"processes topology ({len(agents)} agents, each role an OS process)",
        f"answered of {sent - 200:,} sent ")
    n = min(len(v) for v in stages.values())
    if n:
        tr, fr, it, od = (stages[k][-n:] for k in stages)
        print("stage (Redis stream entry times, ms, median / p99): "
              f"ingest->features written {np.median(fr - tr):.0f} / {np.percentile(fr - tr, 99):.0f}, "
              f"->agent intent {np.median(it - fr):.0f} / {np.percentile(it - fr, 99):.0f}, "
              f"->risk order {np.median(od - it):.0f} / {np.percentile(od - it, 99):.0f}")
    print(f"exchange WebSocket connections: {conns} (1 market data from ingest + 1 user channel of risk) "
          f"for {len(agents)} agents")


def redis_writes(args) -> None:
    import redis

    from hlquant.bus.redis_state import RedisFeatureStore

    r = redis.Redis.from_url(args.redis)
    ns = f"benchw{uuid.uuid4().hex[:6]}"
    store = RedisFeatureStore(r, {"default": 500}, ns)
    n = args.writes
    rows = [("BTC" if i % 3 == 0 else "ETH" if i % 3 == 1 else "SOL", f"f{i % 64}", float(i), i) for i in range(n)]
    batch = 1000
    t = time.perf_counter()
    for i in range(0, n, batch):
        store.put_batch(rows[i:i + batch])
    fs_s = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(0, n, batch):
        p = r.pipeline(transaction=False)
        for j in range(i, min(i + batch, n)):
            p.set(f"{ns}:raw:{j % 192}", b"x" * 12)
        p.execute()
    raw_s = time.perf_counter() - t
    print(f"\n== Redis writes ({n:,}, pipelines of {batch}) ==")
    print(f"FeatureStore.put_batch  {n / fs_s:12,.0f} writes/s")
    print(f"raw redis-py SET        {n / raw_s:12,.0f} writes/s")
    print(f"ratio feature store / raw: {raw_s / fs_s:.2f}x")
    for k in r.scan_iter(f"{ns}:*"):
        r.delete(k)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ticks", type=int, default=10_000)
    ap.add_argument("--topology", choices=("single", "processes", "both"), default="both")
    ap.add_argument("--agents", type=int, default=2, help="idle agents beside the trading one (processes)")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    ap.add_argument("--writes", type=int, default=200_000)
    args = ap.parse_args(argv)

    from hlquant.core.events import BookSnapshot
    from hlquant.fakeexchange.testing import running_fake_exchange

    for topo in (("single", "processes") if args.topology == "both" else (args.topology,)):
        with running_fake_exchange(cash=1e9) as fx:
            fx.server.faults.weight_per_min = 10**9
            t = int(time.time() * 1000)
            fx.server.publish(BookSnapshot(t, t, "BTC", [(99_990.0, 1e6)], [(100_010.0, 1e6)]))
            (single if topo == "single" else processes)(args, fx)
    redis_writes(args)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
