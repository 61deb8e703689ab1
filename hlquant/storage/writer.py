"""Live ingestion: a consumer group on the Redis Streams bus writes market data and
audit events to PostgreSQL (and audit events to ClickHouse), acknowledging a
batch only after the database committed it.

A crash anywhere loses nothing and doubles nothing: entries not yet
acknowledged stay pending and are re-read by the restarted writer (same
consumer name) or claimed by a peer, and the tables' primary keys turn a
second write of the same row into a no-op.

    python -m hlquant.storage.writer --symbols BTC,ETH --redis redis://127.0.0.1:6379/0 \\
        --namespace hlq --dsn postgresql://postgres@127.0.0.1:5432/hlquant --schema hlquant
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hlquant.bus.redis_state import unpack
from hlquant.core.events import BBO, BookSnapshot, Candle, Event, FundingRate, MarkPrice, Trade
from hlquant.data.market import STREAMS, MarketData
from hlquant.storage.postgres import PostgresStore

log = logging.getLogger(__name__)
MARKET_EVENTS = (Trade, Candle, BookSnapshot, FundingRate, BBO, MarkPrice)
MARKET_TOPICS = ("Trade", "Candle", "BookSnapshot", "FundingRate", "BBO", "MarkPrice")
AUDIT_TOPIC = "Audit"


class StreamWriter:
    def __init__(self, client: Any, store: PostgresStore, symbols: Sequence[str], namespace: str = "hlq",
                 group: str = "writers", consumer: str = "writer-0", analytics: Any = None,
                 sessions: Sequence[str] = ()) -> None:
        self.r, self.store, self.ns = client, store, namespace
        self.group, self.consumer = group, consumer
        self.analytics = analytics
        self.symbols = list(symbols)
        self.streams = [f"{namespace}:{k}:{{{s}}}" for s in self.symbols for k in MARKET_TOPICS]
        self.streams += [f"{namespace}:{AUDIT_TOPIC}:{{{s}}}" for s in sessions]
        for k in self.streams:
            try:
                self.r.xgroup_create(k, group, id="0", mkstream=True)
            except Exception as e:
                if "BUSYGROUP" not in str(e):
                    raise
        self.ids = self.store.symbol_ids(self.symbols)
        self.counters = {"batches": 0, "market_rows": 0, "audit_rows": 0, "inserted": 0, "redelivered": 0}
        self._pending_first = True

    def read_batch(self, count: int, block_ms: int) -> list[tuple[str, bytes, dict]]:
        out: list[tuple[str, bytes, dict]] = []
        if self._pending_first:  # after a restart: what this consumer read but never acknowledged
            res = self.r.xreadgroup(self.group, self.consumer, {k: "0" for k in self.streams}, count=count)
            for k, entries in res or []:
                out += [(k.decode(), mid, f) for mid, f in entries if f]
            self.counters["redelivered"] += len(out)
            if not out:
                self._pending_first = False
            return out
        res = self.r.xreadgroup(self.group, self.consumer, {k: ">" for k in self.streams}, count=count,
                                block=block_ms or None)
        for k, entries in res or []:
            out += [(k.decode(), mid, f) for mid, f in entries if f]
        return out

    def write(self, batch: list[tuple[str, bytes, dict]]) -> int:
        """Write one batch (market rows + audit rows), then acknowledge it."""
        market: list[Event] = []
        audit: list[dict] = []
        for key, _mid, f in batch:
            data = f[b"d"]
            if f":{AUDIT_TOPIC}:" in key:
                audit.append(json.loads(data))
            else:
                ev = unpack(data)
                if isinstance(ev, MARKET_EVENTS):
                    market.append(ev)
        inserted = 0
        if market:
            md = MarketData.from_events(market, symbols=self.symbols)
            sym_map = np.array([self.ids[s] for s in md.symbols], dtype=np.int16)
            for kind, a in md.arrays().items():
                if len(a):
                    inserted += self.store.copy_rows(kind, a, sym_map)
                    if STREAMS[kind] == "candles":
                        self.store.refresh_rollups(int(a["ts_exch"].min()), int(a["ts_exch"].max()))
        if audit:
            frame = pd.DataFrame(audit)
            inserted += self.store.ingest_audit(frame)
            if self.analytics is not None:
                self.analytics.insert_audit(frame)
        # committed (each copy_rows / ingest_audit commits): only now acknowledge
        p = self.r.pipeline(transaction=False)
        for key, mid, _f in batch:
            p.xack(key, self.group, mid)
        p.execute()
        self.counters["batches"] += 1
        self.counters["market_rows"] += len(market)
        self.counters["audit_rows"] += len(audit)
        self.counters["inserted"] += inserted
        return inserted

    def run(self, stop: list[bool], batch: int = 500, block_ms: int = 200, exit_when_idle_s: float = 0.0) -> dict:
        idle_since = time.monotonic()
        while not stop[0]:
            b = self.read_batch(batch, block_ms)
            if b:
                self.write(b)
                idle_since = time.monotonic()
            elif exit_when_idle_s and time.monotonic() - idle_since > exit_when_idle_s:
                break
        return dict(self.counters)


def publish_audit(client: Any, namespace: str, session: str, rows: pd.DataFrame | list[dict]) -> None:
    """Put audit rows (``AuditLog.frame()`` or the dicts an ``AuditLog`` mirror receives) on the
    session's audit stream."""
    recs = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else rows
    p = client.pipeline(transaction=False)
    for rec in recs:
        p.xadd(f"{namespace}:{AUDIT_TOPIC}:{{{session}}}", {"d": json.dumps(rec, default=str)})
    p.execute()


def audit_mirror(client: Any, namespace: str, session: str):
    """An ``AuditLog(mirror=...)`` callable that streams every flushed batch to Redis."""
    return lambda rows: publish_audit(client, namespace, session, rows)


def main(argv: list[str] | None = None) -> int:
    import redis

    from hlquant.storage.postgres import DEFAULT_DSN

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--symbols", required=True)
    ap.add_argument("--sessions", default="", help="audit sessions whose streams to store (comma separated)")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--namespace", default="hlq")
    ap.add_argument("--dsn", default=DEFAULT_DSN)
    ap.add_argument("--schema", default="hlquant")
    ap.add_argument("--consumer", default="writer-0")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--clickhouse", default=None, help="chdb path (or http:// URL) for audit analytics")
    ap.add_argument("--exit-when-idle", type=float, default=0.0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    analytics = None
    if args.clickhouse:
        from hlquant.storage.clickhouse import AuditAnalytics

        is_url = args.clickhouse.startswith("http")
        analytics = AuditAnalytics(None if is_url else args.clickhouse, args.clickhouse if is_url else None)
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    with PostgresStore(args.dsn, args.schema) as store:
        store.create()
        w = StreamWriter(redis.Redis.from_url(args.redis), store, args.symbols.split(","), args.namespace,
                         consumer=args.consumer, analytics=analytics,
                         sessions=[s for s in args.sessions.split(",") if s])
        res = w.run(stop, args.batch, exit_when_idle_s=args.exit_when_idle)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
