"""Tick-to-order latency of the live path, with Redis in the loop.

    .venv/bin/python bench/live_latency.py [--ticks 10000] [--redis redis://127.0.0.1:6379/12]

A fake Hyperliquid exchange (same process, its own thread and event loop)
publishes a trade on its WebSocket; hlquant's live engine receives it
(HyperliquidFeed), updates a feature in the Redis FeatureStore, runs an agent
that flips its target on every tick (fills come back on the user channels),
posts the intent on the Redis
Blackboard, nets it in the RiskEngine, claims the cloid in the Redis
idempotency store and sends a signed order (HyperliquidVenue) back to the
exchange. Latency = order received by the exchange - tick handed to the
exchange for sending (one tick in flight at a time, and the exchange's answer
to the previous order completed before the next tick, so the fake server's own
signature check is not counted). Prints p50/p99/max against the design budget
of 500 ms.

Then: RedisFeatureStore pipelined writes/s beside raw redis-py pipelined SET
of the same number of keys, in the same run, as a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BUDGET_MS = 500.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ticks", type=int, default=10_000)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    ap.add_argument("--writes", type=int, default=200_000)
    args = ap.parse_args(argv)

    import redis

    from hlquant.agents import Agent, AgentConfig
    from hlquant.audit.log import AuditLog
    from hlquant.bus.redis_state import (
        RedisBlackboard,
        RedisFeatureStore,
        RedisHeartbeats,
        RedisIdempotencyStore,
    )
    from hlquant.core.events import BookSnapshot, Side, Trade
    from hlquant.fakeexchange.testing import running_fake_exchange
    from hlquant.hyperliquid.exchange import ExchangeClient
    from hlquant.hyperliquid.info import InfoClient
    from hlquant.hyperliquid.limits import WeightLimiter
    from hlquant.hyperliquid.signing import Signer
    from hlquant.hyperliquid.venue import HyperliquidVenue
    from hlquant.hyperliquid.ws import HyperliquidFeed, user_subscriptions
    from hlquant.live.engine import LiveEngine
    from hlquant.risk.engine import RiskConfig
    from hlquant.router.router import RouterConfig

    class TickFlip(Agent):
        """Flips between +/- size on every trade: one order per tick."""

        features = [{"name": "ema", "kind": "ema", "input": "trade.px", "params": {"span": 20}}]
        defaults = {"size": 0.001}

        def setup(self, ctx):
            self.sign = 1

        def decide(self, ctx):
            ctx.feature("ema")
            self.sign = -self.sign
            return ctx.target(self.sign * self.params["size"], reason="tick")

    r = redis.Redis.from_url(args.redis)
    ns = f"bench{uuid.uuid4().hex[:6]}"
    lat_ns: list[int] = []
    with running_fake_exchange(cash=1e9) as fx:
        fx.server.faults.weight_per_min = 10**9
        t = int(time.time() * 1000)
        fx.server.publish(BookSnapshot(t, t, "BTC", [(99_990.0, 1e6)], [(100_010.0, 1e6)]))
        got_order = threading.Event()
        arrival = [0]

        def hook(wire, t_ns):
            arrival[0] = t_ns
            got_order.set()

        fx.server.order_hooks.append(hook)
        # the fake's weight budget is lifted and so is the client's (1200/min would pace this
        # benchmark at 20 orders/s: it measures the path, not Hyperliquid's rate limit)
        info = InfoClient(fx.url, limiter=WeightLimiter(per_min=10**9))
        signer = Signer(fx.agent_key, fx.master)
        venue = HyperliquidVenue(info, ExchangeClient(signer, info.assets(), fx.url, limiter=info.limiter), ["BTC"])
        agent = TickFlip(AgentConfig("tick", ("BTC",), trigger="trade", heartbeat_ms=1000,
                                     heartbeat_ttl_ms=10_000))
        engine = LiveEngine(
            [agent], venue, audit=AuditLog(None, "bench", flush_every=10**9),
            risk=RiskConfig(max_orders_per_s=1e6, order_burst=10**6, max_notional_per_symbol=1e9,
                            max_gross_exposure=1e9, max_order_notional=1e9, max_leverage=50,
                            max_price_age_ms=5_000),
            router=RouterConfig(orders_per_s=1e6, burst=10**6, exec_style="market", weight_per_min=1e9),
            store=RedisFeatureStore(r, {"default": 5_000}, ns), blackboard=RedisBlackboard(r, ns),
            heartbeats=RedisHeartbeats(r, ns), idempotency=RedisIdempotencyStore(r, ns),
            initial_cash=1e9,
        )
        feed = HyperliquidFeed(fx.ws_url, [{"type": "trades", "coin": "BTC"}, *user_subscriptions(fx.master)],
                               info=info)
        stop = asyncio.Event()

        async def consume():
            async for ev in feed.events(stop):
                if isinstance(ev, Trade):
                    engine.on_event(ev)
                else:  # fills and order updates from the user channels
                    venue.on_exchange_event(ev)

        def driver(loop):
            for i in range(args.ticks + 200):
                got_order.clear()
                now = int(time.time() * 1000)
                t0 = time.perf_counter_ns()
                fx.server.publish(Trade(now, now, "BTC", Side.BUY if i % 2 else Side.SELL, 100_000.0, 0.01, i + 1))
                if not got_order.wait(5):
                    print(f"tick {i}: no order within 5 s", file=sys.stderr)
                    break
                if i >= 200:  # warm-up ticks excluded
                    lat_ns.append(arrival[0] - t0)
                time.sleep(0.006)  # let the exchange answer this order before the next tick
            loop.call_soon_threadsafe(stop.set)

        async def run():
            task = asyncio.create_task(consume())
            await asyncio.wait_for(feed.connected.wait(), 10)
            await asyncio.sleep(0.3)
            th = threading.Thread(target=driver, args=(asyncio.get_running_loop(),))
            t_start = time.perf_counter()
            th.start()
            await task
            th.join()
            return time.perf_counter() - t_start

        wall = asyncio.run(run())
        orders = len(fx.server.orders_received)

    lat = np.array(lat_ns) / 1e6
    print(f"== tick-to-order latency: {len(lat):,} ticks, {orders:,} orders at the exchange, {wall:.1f}s ==")
    print(f"p50 {np.percentile(lat, 50):.2f} ms   p90 {np.percentile(lat, 90):.2f} ms   "
          f"p99 {np.percentile(lat, 99):.2f} ms   max {lat.max():.2f} ms   (budget {BUDGET_MS:.0f} ms: "
          f"p99 is {BUDGET_MS / np.percentile(lat, 99):.0f}x under)")

    # --- feature-store write throughput vs raw redis-py ------------------------------
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
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
