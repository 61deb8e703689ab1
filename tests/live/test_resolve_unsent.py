"""An approved order recorded but never published (the risk process was killed between the
two) is recorded as not sent by the next risk process; orders a router has, or the exchange
knows, are left to their own outcome (found by the 10-minute soak: 1 order unresolved)."""

from __future__ import annotations

import time
import uuid
from types import SimpleNamespace

import redis

from hlquant.audit.log import AuditLog, payloads
from hlquant.bus.redis_state import RedisIdempotencyStore, RedisStreamBus
from hlquant.core.clock import WallClock
from hlquant.core.events import OrderAck, OrderRequest, OrderStatus, Side, Tif
from hlquant.core.ids import cloid_for
from hlquant.fakeexchange.testing import running_fake_exchange
from hlquant.hyperliquid.exchange import ExchangeClient
from hlquant.hyperliquid.info import InfoClient
from hlquant.hyperliquid.signing import Signer
from hlquant.live.reconcile import resolve_unsent
from hlquant.storage.writer import audit_mirror
from tests.hyperliquid.conftest import seed_books


def test_the_next_risk_process_records_what_was_approved_but_never_sent(redis_ok, tmp_path):
    r = redis.Redis(host="127.0.0.1", port=6379, db=13)
    ns = f"uns{uuid.uuid4().hex[:8]}"
    try:
        with running_fake_exchange() as fx:
            seed_books(fx.server)
            now = int(time.time() * 1000)

            def req(name: str, px: float = 90_000.0) -> OrderRequest:
                return OrderRequest(now, now, cloid_for(name), name, "a1", "BTC", Side.BUY, 0.001, px, Tif.GTC)

            never, queued, claimed, at_exchange = req("never"), req("queued"), req("claimed"), req("sent")
            # the killed risk process: four approvals recorded and synced to its audit stream
            dead = AuditLog(tmp_path / "old", "risk", flush_every=10**6, mirror=audit_mirror(r, ns, "risk"))
            for q in (never, queued, claimed, at_exchange):
                dead.record(q)
            dead.sync()
            # ...of which one reached the order stream, one a router's claim, one the exchange
            RedisStreamBus(r, ns).publish("OrderRequest:{BTC}", queued)
            RedisIdempotencyStore(r, ns).claim(claimed.cloid, "r1", 60_000, now)
            info = InfoClient(fx.url)
            ex = ExchangeClient(Signer(fx.agent_key, fx.master), info.assets(), fx.url)
            ex.place([at_exchange], {})

            audit = AuditLog(None, "risk")
            kernel = SimpleNamespace(router=SimpleNamespace(open={}), clock=WallClock(), audit=audit)
            assert resolve_unsent(kernel, r, ns, "risk", info, fx.master) == [never.cloid]
            acks = [p for p in payloads(audit.frame()) if p["kind"] == "OrderAck"]
            assert [(a["cloid"], a["status"], a["code"]) for a in acks] == [(never.cloid, "CANCELED", "UNAVAILABLE")]
            # a second restart finds the outcome on the stream once it is mirrored: nothing twice
            audit2 = AuditLog(None, "risk", mirror=audit_mirror(r, ns, "risk"))
            audit2.record(OrderAck(now, now, never.cloid, "BTC", OrderStatus.CANCELED))
            audit2.sync()
            kernel.audit = AuditLog(None, "risk")
            assert resolve_unsent(kernel, r, ns, "risk", info, fx.master) == []
    finally:
        for k in r.scan_iter(f"{ns}:*"):
            r.delete(k)
