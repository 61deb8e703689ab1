"""Soak and load: the multi-process topology for minutes, with crashes, then an integrity check.

    .venv/bin/python bench/live_soak.py [--minutes 10] [--kill-every 30] [--speed 600] [--agents 4]

Every role of ``live.topology=processes`` runs as its own OS process (ingest, a stream
processor, ``--agents`` drill agents on BTC/ETH/SOL, the risk process, two router
replicas) against the fake exchange replaying the sample at ``--speed`` x real time
(the intent rate follows: every agent decides on every candle of every symbol). A
private Redis server (its own port, append-only file fsync'd on every write, like a
deployment that must not lose state) backs them. Every ``--kill-every`` seconds a
random component is killed with SIGKILL and started again; half-way Redis itself is
restarted once. At the end, after the streams drain:

- intents, decisions, orders and fills per second;
- decision-to-ack latency (risk decision -> the replica's outcome) p50/p99/max per minute;
- memory (RSS) of every process at start and end (a leak shows as growth);
- Redis stream lengths;
- ``hlquant audit verify`` over every component's audit and the audit streams, no
  duplicate cloid at the exchange, every approved order resolved, positions equal.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def start_redis(port: int, d: Path) -> subprocess.Popen:
    import redis

    p = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--dir", str(d), "--save", "", "--appendonly", "yes", "--appendfsync", "always"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c = redis.Redis(port=port)
    for _ in range(200):
        try:
            if c.ping():
                return p
        except (redis.ConnectionError, redis.BusyLoadingError):
            time.sleep(0.05)
    raise RuntimeError(f"redis on {port} did not start")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--kill-every", type=float, default=30.0, help="seconds between crashes")
    ap.add_argument("--speed", type=float, default=600.0, help="replay speed (x real time)")
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-redis-restart", action="store_true")
    args = ap.parse_args(argv)

    from hlquant.audit.verify import load_records, verify
    from hlquant.connectors.replay import ReplayConnector
    from hlquant.data.loaders import load_sample
    from hlquant.fakeexchange.testing import free_port, running_fake_exchange
    from hlquant.live.drill import Drill, wait_for

    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="hlq-soak-"))
    port = free_port()
    redis_dir = work / "redis"
    redis_dir.mkdir()
    server = start_redis(port, redis_dir)
    url = f"redis://127.0.0.1:{port}/0"
    ns = f"soak{uuid.uuid4().hex[:6]}"
    conf = work / "conf" / "strategy"
    conf.mkdir(parents=True)
    agents = [f"a{i + 1}" for i in range(args.agents)]
    lines = ["name: soak", "agents:"]
    lines += [f"  - {{cls: 'strategies.drill:RandomFlip', name: {a}, symbols: [BTC, ETH, SOL], "
              f"heartbeat_ms: 500, heartbeat_ttl_ms: 3000, params: {{size_usd: 300.0, seed: {i + 1}}}}}"
              for i, a in enumerate(agents)]
    (conf / "soak.yaml").write_text("\n".join(lines) + "\n")
    md = load_sample()
    print(f"work dir {work}; redis :{port} (appendfsync always); {args.agents} agents x 3 symbols; "
          f"replay {args.speed:g}x: ~{args.agents * 3 * args.speed / 60:.1f} intents/s asked for")
    drill = None
    try:
        with running_fake_exchange(cash=10_000_000.0) as fx:
            fx.server.faults.weight_per_min = 10**9
            env = {**os.environ, "HLQUANT_PRIVATE_KEY": fx.agent_key, "PYTHONPATH": str(ROOT)}
            common = [f"hydra.searchpath=[file://{conf.parent}]", "strategy=soak", f"live.url={fx.url}",
                      f"live.account_address={fx.master}", f"live.namespace={ns}", f"live.redis_url={url}",
                      "live.claim_ttl_ms=3000", "live.dead_mans_switch_ms=0", "risk.max_orders_per_s=20",
                      "risk.order_burst=40", "router.exec_style=passive", "router.orders_per_s=200", "router.burst=400"]
            drill = Drill(common, work / "run", ns, url, agents, ["BTC", "ETH", "SOL"], env=env, cwd=ROOT)
            drill.start_all()
            wait_for(drill.ready, 180, "every role subscribed", state=lambda: (drill.dead(), drill.logs(400)))
            mem0 = {t: rss_mb(p.pid) for t, p in drill.procs.items()}
            replay = fx.replay(iter(ReplayConnector(md)), speed=args.speed)
            t0 = time.monotonic()
            end = t0 + args.minutes * 60
            kills: list[tuple[float, str]] = []
            redis_restarted = args.no_redis_restart
            next_kill = t0 + args.kill_every
            victims = [t for t in drill.tags() if not t.startswith("features")] + ["features-f1"]
            while time.monotonic() < end and not replay.done():
                time.sleep(0.2)
                now = time.monotonic()
                if not redis_restarted and now - t0 >= args.minutes * 30:
                    server.terminate()  # SIGTERM: Redis finishes the append-only file, as a restart would
                    server.wait(30)
                    down = time.monotonic()
                    server = start_redis(port, redis_dir)
                    kills.append((now - t0, f"redis (down {time.monotonic() - down:.1f} s)"))
                    redis_restarted = True
                if now >= next_kill:
                    tag = rng.choice(victims)
                    drill.kill(tag)
                    drill.start(tag)
                    kills.append((now - t0, tag))
                    next_kill = now + args.kill_every
            replay.cancel()
            elapsed = time.monotonic() - t0
            wait_for(drill.idle, 300, "every stream drained", state=drill.backlog)
            mem1 = {t: rss_mb(p.pid) for t, p in drill.procs.items()}
            streams = {k.split(":", 1)[1]: drill.r.xlen(k) for k in drill.streams()}
            book = drill.account().get("positions", {})
            drill.stop_all()
            acct = fx.server.accounts[fx.master.lower()]
            exchange_pos = {s: q for s, q in acct.venue.positions().items() if abs(q) > 1e-12}
            cloids = [o["cloid"] for o in fx.server.orders_received]
            report = verify(drill.out, url, ns)
            recs = load_records(drill.out, url, ns)
    finally:  # a failed run leaves no process or Redis behind
        if drill is not None:
            for p in drill.procs.values():
                if p.poll() is None:
                    p.kill()
                    p.wait(15)
        server.terminate()
        server.wait(30)

    kinds = defaultdict(int)
    for r in recs:
        kinds[r["kind"]] += 1
    print(f"\n== {elapsed / 60:.1f} min, {len(kills)} crashes: " + ", ".join(f"{t:.0f}s {w}" for t, w in kills))
    print("per second: " + ", ".join(f"{k} {kinds[k] / elapsed:.1f}" for k in
                                     ("Intent", "RiskDecision", "OrderRequest", "Fill")))
    decided = {r["intent_id"]: r["ts_recv"] for r in recs if r["kind"] == "RiskDecision" and r.get("approved")}
    order_of = {r["cloid"]: r["intent_id"] for r in recs if r["kind"] == "OrderRequest" and r.get("intent_id")}
    acks = {}
    for r in recs:
        if r["kind"] == "OrderAck" and r.get("status") not in ("PENDING", None) and r["cloid"] not in acks:
            acks[r["cloid"]] = r["ts_exch"]
    lat = defaultdict(list)
    t_first = min(decided.values()) if decided else 0
    for cloid, t_ack in acks.items():
        t_dec = decided.get(order_of.get(cloid, ""))
        if t_dec is not None and t_ack >= t_dec:
            lat[int((t_dec - t_first) // 60_000)].append(t_ack - t_dec)
    print("decision -> ack latency per minute (ms, p50 / p99 / max, n):")
    for m in sorted(lat):
        a = np.array(lat[m])
        print(f"  minute {m:3d}: {np.percentile(a, 50):7.1f} / {np.percentile(a, 99):7.1f} / {a.max():7.0f}  ({len(a)})")
    print("memory (RSS MB) start -> end:")
    for t in sorted(mem1):
        print(f"  {t:16s} {mem0.get(t, float('nan')):7.1f} -> {mem1[t]:7.1f}   (restarted processes start over)")
    print("stream lengths: " + ", ".join(f"{k} {v}" for k, v in sorted(streams.items())))
    dup = len(cloids) - len(set(cloids))
    sent = {r["cloid"] for r in recs if r["kind"] == "OrderRequest" and r.get("agent") != "adopted"}
    settled = {r["cloid"] for r in recs if r["kind"] == "OrderAck" and r.get("status") in ("REJECTED", "CANCELED")}
    unresolved = sent - set(cloids) - settled
    book = {s: v for s, v in book.items() if abs(v) > 1e-9}
    same = set(book) == set(exchange_pos) and all(abs(book[s] - exchange_pos[s]) < 1e-6 for s in book)
    print(f"\n{report}")
    for c in sorted(unresolved)[:5]:  # the evidence: every record of each
        print(f"  unresolved {c}: " + "; ".join(f"{r.get('session', '?')} {r['kind']} {r.get('status', '')}"
                                                 for r in recs if r.get("cloid") == c or r.get("id") == c))
    print(f"duplicate cloids at the exchange: {dup}; approved orders never resolved: {len(unresolved)}; "
          f"positions equal to the exchange's: {same} (book {book}, exchange {exchange_pos})")
    ok = report.ok and dup == 0 and not unresolved and same
    print("INTEGRITY OK" if ok else "INTEGRITY FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
