"""Stream processor: market streams in, features in the Redis feature store, ``FeaturesReady`` out.

Replicas share the symbols through leases (``<ns>:flease:{SYM}``, expiring
after ``live.claim_ttl_ms``): replica ``i`` of ``n`` takes the symbols whose
hash falls to it, and any replica takes over a symbol whose lease has been
free for a claim timeout (its owner died). A symbol's market streams are
read through the consumer group ``features`` under a consumer named after the
symbol, not the process, so whoever holds the lease resumes that consumer's
pending entries first.

Each batch is applied to the same incremental kernels as paper trading and
then committed in one transaction: the feature values (with their source
timestamps), the kernels' state, one ``FeaturesReady:{SYM}`` announcement per
triggering stream, and the acknowledgement of the entries. A processor killed
at any point leaves either all of that or none of it; its successor loads the
state and re-applies exactly the unacknowledged entries. While no processor
runs, agents find the features stale and skip (counted): they never decide
on old values.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from pathlib import Path
from typing import Any

from hlquant.bus.redis_state import pack, unpack
from hlquant.core.events import (
    BBO,
    BookSnapshot,
    Candle,
    Event,
    FeaturesReady,
    FundingRate,
    MarketKind,
    MarkPrice,
    Trade,
)
from hlquant.core.market import dispatch_market
from hlquant.features.kernels import parse_specs
from hlquant.features.pipeline import FeatureProcessor
from hlquant.kernel import Role, build_kernel
from hlquant.live.roles.common import MARKET_KINDS, Outage, role_spec, stop_on_signals

log = logging.getLogger(__name__)
GROUP = "features"
_STREAM = {Candle: "candle", Trade: "trade", BookSnapshot: "l2", BBO: "bbo", FundingRate: "funding",
           MarkPrice: "mark"}
_PRIORITY = {Candle: MarketKind.CANDLE, Trade: MarketKind.TRADE, BookSnapshot: MarketKind.L2,
             BBO: MarketKind.BBO, FundingRate: MarketKind.FUNDING, MarkPrice: MarketKind.MARK}
_LEASE_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""


def _price(ev: Event) -> float:
    t = type(ev)
    if t is Candle:
        return ev.close
    if t is Trade:
        return ev.px
    if t is BookSnapshot:
        return (ev.bids[0][0] + ev.asks[0][0]) / 2 if ev.bids and ev.asks else float("nan")
    if t is BBO:
        return (ev.bid_px + ev.ask_px) / 2
    if t is MarkPrice:
        return ev.mark_px
    return float("nan")


class _Collect:
    """Feature store stand-in: collects a batch's writes for the transaction."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, tuple[float, int]]] = {}

    def put_many(self, symbol: str, items: Any, ts: int) -> None:
        d = self.items.setdefault(symbol, {})
        for name, v in items:
            d[name] = (v, ts)


class StreamProcessor:
    """One replica (see module docstring)."""

    def __init__(self, cfg: Any, name: str = "f1", index: int = 0, replicas: int = 1,
                 out_dir: str | Path | None = None) -> None:
        spec, r = role_spec(cfg)
        self.k = build_kernel(spec, Role.FEATURES, assets={}, redis=r, out_dir=out_dir, component=f"features-{name}")
        self.r, self.name, self.index, self.replicas = r, name, int(index), max(1, int(replicas))
        live = spec.live
        self.ns, self.maxlen, self.lease_ms = live.namespace, live.stream_maxlen, live.claim_ttl_ms
        self.symbols = spec.symbols
        self.specs = parse_specs(self.k.feature_specs)
        self.trigger_streams = {a.config.trigger for a in spec.agents}
        self.owned: dict[str, FeatureProcessor] = {}
        self._free_since: dict[str, float] = {}
        self._pending: set[str] = set()
        self._renew = r.register_script(_LEASE_RENEW)
        self.counters = {"events": 0, "batches": 0, "announced": 0, "acquired": 0, "lost": 0}

    # --- keys ---------------------------------------------------------------
    def _lease(self, sym: str) -> str:
        return f"{self.ns}:flease:{{{sym}}}"

    def _state_key(self, sym: str) -> str:
        return f"{self.ns}:fstate:{{{sym}}}"

    def _streams(self, sym: str) -> list[str]:
        return [f"{self.ns}:{kind}:{{{sym}}}" for kind in MARKET_KINDS]

    def preferred(self, sym: str) -> bool:
        return zlib.crc32(sym.encode()) % self.replicas == self.index

    # --- leases ---------------------------------------------------------------
    def _acquire(self, sym: str) -> None:
        proc = FeatureProcessor(self.specs, _Collect(), [sym])
        states = self.r.hgetall(self._state_key(sym))
        proc.load_state(sym, {(k.decode() if isinstance(k, bytes) else k): v for k, v in states.items()})
        for key in self._streams(sym):
            try:
                self.r.xgroup_create(key, GROUP, id="0", mkstream=True)
            except Exception as e:  # BUSYGROUP: made by an earlier owner
                if "BUSYGROUP" not in str(e):
                    raise
        self.owned[sym] = proc
        self._pending.add(sym)
        self.counters["acquired"] += 1
        log.info("%s: took %s", self.name, sym)

    def refresh_leases(self) -> None:
        now = time.monotonic()
        for sym in self.symbols:
            key = self._lease(sym)
            if sym in self.owned:
                if not self._renew(keys=[key], args=[self.name, self.lease_ms]):
                    del self.owned[sym]  # lost it (paused past the timeout): someone else owns it
                    self.counters["lost"] += 1
                continue
            mine = (self.r.get(key) or b"").decode() == self.name  # held under our name already
            if mine and self._renew(keys=[key], args=[self.name, self.lease_ms]):
                self._acquire(sym)  # after a failed commit: reload the state and pending entries
                continue
            if self.preferred(sym):
                if self.r.set(key, self.name, nx=True, px=self.lease_ms):
                    self._acquire(sym)
                continue
            if self.r.exists(key):
                self._free_since.pop(sym, None)
                continue
            since = self._free_since.setdefault(sym, now)
            if now - since >= self.lease_ms / 1000.0 and self.r.set(key, self.name, nx=True, px=self.lease_ms):
                self._free_since.pop(sym, None)
                self._acquire(sym)

    # --- processing ---------------------------------------------------------
    def step(self, count: int = 500) -> int:
        """One read-apply-commit round over the owned symbols; returns events applied."""
        n = 0
        for sym in list(self.owned):
            try:
                n += self._step_symbol(sym, count)
            except BaseException:
                # not committed (or a read whose reply was lost): the entries stay pending under
                # the symbol's consumer; reload the state the batch may have advanced and re-read
                # them before anything new
                self._pending.add(sym)
                self.owned.pop(sym, None)
                raise
        return n

    def _step_symbol(self, sym: str, count: int) -> int:
        keys = self._streams(sym)
        pending = sym in self._pending
        res = self.r.xreadgroup(GROUP, f"sym-{sym}", {k: ("0" if pending else ">") for k in keys}, count=count)
        entries: list[tuple[int, int, bytes, str, Event | None]] = []
        for key, items in res or []:
            key = key.decode() if isinstance(key, bytes) else key
            for msg_id, fields in items:
                ev = None
                if fields:
                    try:
                        ev = unpack(fields[b"d"] if b"d" in fields else fields["d"])
                    except Exception as e:  # an undecodable entry is acknowledged and counted
                        log.warning("%s: undecodable entry %s on %s: %s", self.name, msg_id, key, e)
                sort = (ev.ts_exch, int(_PRIORITY.get(type(ev), 9))) if ev is not None else (0, 9)
                entries.append((*sort, msg_id, key, ev))
        if pending and len(entries) < count:
            self._pending.discard(sym)
        if not entries:
            return 0
        entries.sort(key=lambda e: (e[0], e[1], e[2]))
        proc = self.owned[sym]
        store = proc.store
        store.items.clear()
        ready: dict[str, tuple[int, float, int]] = {}
        for _ts, _p, _id, _key, ev in entries:
            if ev is None:
                continue
            dispatch_market(ev, proc)
            stream = _STREAM.get(type(ev))
            if stream in self.trigger_streams:
                _t, _px, cnt = ready.get(stream, (0, float("nan"), 0))
                ready[stream] = (ev.ts_exch, _price(ev), cnt + 1)
        p = self.r.pipeline(transaction=True)
        values = store.items.get(sym, {})
        if values:
            by_ts: dict[int, list[tuple[str, float]]] = {}
            for name, (v, ts) in values.items():
                by_ts.setdefault(ts, []).append((name, v))
            mapping: dict[str, bytes] = {}
            for ts, items in by_ts.items():
                mapping.update(self.k.store.encode(items, ts))
            p.hset(self.k.store.key(sym), mapping=mapping)
            p.hset(self._state_key(sym), mapping=proc.state_of(sym))
        now = int(time.time() * 1000)
        for stream, (ts, px, cnt) in sorted(ready.items(), key=lambda kv: kv[1][0]):
            p.xadd(f"{self.ns}:FeaturesReady:{{{sym}}}",
                   {"d": pack(FeaturesReady(ts, now, sym, stream, px, cnt))}, maxlen=self.maxlen, approximate=True)
        acks: dict[str, list] = {}
        for _ts, _p, msg_id, key, _ev in entries:
            acks.setdefault(key, []).append(msg_id)
        for key, ids in acks.items():
            p.xack(key, GROUP, *ids)
        p.execute()
        self.counters["events"] += len(entries)
        self.counters["batches"] += 1
        self.counters["announced"] += len(ready)
        return len(entries)

    def run(self, stop: threading.Event) -> dict[str, Any]:
        last_lease = [0.0]

        def once() -> None:
            now = time.monotonic()
            if now - last_lease[0] >= self.lease_ms / 3000.0:
                self.refresh_leases()
                last_lease[0] = now
            try:
                n = self.step()
            except Exception as e:
                if "NOGROUP" not in str(e):
                    raise
                self.owned.clear()  # Redis lost its state (a restart): take the leases again
                n = 0
            if not n:
                stop.wait(0.005)

        try:
            Outage(f"features {self.name}", stop).run(once, probe=self.r.ping)
        finally:
            self.k.audit.close()
        return {"processor": self.name, "owned": sorted(self.owned), **self.counters}


def run_features(cfg: Any, name: str = "f1", out_dir: str | Path | None = None,
                 stop: threading.Event | None = None) -> dict[str, Any]:
    """``name`` is ``f<i>`` (1-based): replica i of ``live.feature_replicas``."""
    spec, _ = role_spec(cfg)
    try:
        index = int(name.lstrip("f")) - 1
    except ValueError:
        index = 0
    stop = stop_on_signals(stop)
    proc = Outage(f"features {name}", stop).call(
        StreamProcessor, cfg, name, index % spec.live.feature_replicas, spec.live.feature_replicas, out_dir)
    return proc.run(stop)
