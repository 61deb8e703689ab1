"""Redis backends for live mode: bus, Blackboard, heartbeats, idempotency, features.

Each has the same contract as its in-memory twin, so components cannot tell
which one they run on. Keys carry a hash tag per symbol / agent / cloid
(``{...}``) so every key an operation touches lives in one slot and the same
code runs on a Redis Cluster. Payloads are msgpack'd event records.

- ``RedisStreamBus``: one stream per topic (``<ns>:<Kind>:{SYM}``), bounded
  with approximate MAXLEN, read through a consumer group; a message is
  acknowledged only after its handler returned, a restarted consumer first
  re-reads its own pending entries, and ``claim_stale`` takes over what a dead
  consumer left pending (XAUTOCLAIM).
- ``RedisBlackboard``: hash ``<ns>:intent:{SYM}``, one field per agent.
- ``RedisHeartbeats``: ``<ns>:hb:{AGENT}`` = "last_seen:expiry" with a TTL.
- ``RedisIdempotencyStore``: ``SET NX PX`` on ``<ns>:idem:{cloid}``.
- ``RedisFeatureStore``: hash ``<ns>:feat:{SYM}`` of msgpack [value, ts];
  writes and reads pipelined; staleness enforced on read.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgpack

from hlquant.core.errors import StaleFeatureError
from hlquant.core.events import Event, Intent, event_from_record
from hlquant.features.store import StalenessRules

log = logging.getLogger(__name__)
Handler = Callable[[str, Event], None]


def pack(ev: Event) -> bytes:
    return msgpack.packb(ev.to_record(), use_bin_type=True)


def unpack(b: bytes) -> Event:
    return event_from_record(msgpack.unpackb(b, raw=False))


class RedisStreamBus:
    """Event bus on Redis Streams with consumer groups (at-least-once delivery)."""

    def __init__(self, client: Any, namespace: str = "hlq", maxlen: int = 100_000,
                 group: str = "hlquant", consumer: str = "c0",
                 before_ack: Callable[[], None] | None = None) -> None:
        """``before_ack``: run once per batch of delivered entries after their handlers and
        before the batch is acknowledged (e.g. flush what the handlers produced), so a reader
        that sees the entries acknowledged also sees their effects."""
        self.r = client
        self.before_ack = before_ack
        self.ns = namespace
        self.maxlen = maxlen
        self.group = group
        self.consumer = consumer
        self._handlers: dict[str, list[Handler]] = {}
        self._streams: dict[str, str] = {}  # stream key -> topic
        self._pending_first: set[str] = set()
        self.counters: Counter = Counter()
        self._cluster = hasattr(client, "get_primaries")
        self.redelivery = False
        # defer_ack: entries are acknowledged by ack_deferred(), after the work they triggered
        # beyond their handler is done (a batch decided after a whole read)
        self.defer_ack = False
        self._deferred: dict[str, list] = {}

    def key(self, topic: str) -> str:
        return f"{self.ns}:{topic}"

    # --- producer ---------------------------------------------------------------
    def publish(self, topic: str, event: Event) -> None:
        self.r.xadd(self.key(topic), {"d": pack(event)}, maxlen=self.maxlen, approximate=True)
        self.counters["published"] += 1

    def publish_many(self, items: Iterable[tuple[str, Event]]) -> int:
        p = self.r.pipeline(transaction=False)
        n = 0
        for topic, ev in items:
            p.xadd(self.key(topic), {"d": pack(ev)}, maxlen=self.maxlen, approximate=True)
            n += 1
        p.execute()
        self.counters["published"] += n
        return n

    # --- consumer ----------------------------------------------------------------
    def subscribe(self, topic: str, handler: Handler) -> None:
        """Exact topics (streams are per topic); creates the group if needed."""
        k = self.key(topic)
        self._handlers.setdefault(k, []).append(handler)
        self._streams[k] = topic
        self._pending_first.add(k)
        try:
            self.r.xgroup_create(k, self.group, id="0", mkstream=True)
        except Exception as e:  # BUSYGROUP: the group exists (another replica made it)
            if "BUSYGROUP" not in str(e):
                raise

    def _dispatch(self, k: str, entries: Sequence[tuple[Any, dict]], redelivery: bool = False) -> int:
        """Run the handlers of a batch, then ``before_ack``, then acknowledge the batch in one
        XACK (one round trip a batch instead of one an entry: with ``appendfsync always``
        every write waits for the disk). An exception acknowledges the entries handled
        before it and leaves the rest pending (redelivered). Handlers see
        ``self.redelivery``: True when an entry was delivered before (own pending after a
        restart, or claimed from a dead consumer)."""
        self.redelivery = redelivery
        n = 0
        topic = self._streams[k]
        done: list[Any] = []
        try:
            for msg_id, fields in entries:
                if not fields:  # trimmed away while pending
                    done.append(msg_id)
                    continue
                try:
                    ev = unpack(fields[b"d"] if b"d" in fields else fields["d"])
                except Exception as e:
                    self.counters["bad_messages"] += 1
                    log.warning("undecodable bus message %s on %s: %s", msg_id, k, e)
                    done.append(msg_id)
                    continue
                for h in self._handlers[k]:
                    h(topic, ev)  # an exception leaves this entry (and the rest) pending
                done.append(msg_id)
                n += 1
        except BaseException:
            if self.defer_ack:
                # the batch's work is undone: its entries (acked by nobody yet) are re-read
                self._pending_first.add(k)
                self.requeue_deferred()
                done = []
            raise
        finally:
            if done:
                if self.defer_ack:
                    self._deferred.setdefault(k, []).extend(done)
                else:
                    if self.before_ack is not None:
                        self.before_ack()
                    self.r.xack(k, self.group, *done)
        self.counters["delivered"] += n
        return n

    def ack_deferred(self) -> int:
        """Acknowledge every entry delivered since the last call (``defer_ack``)."""
        deferred, self._deferred = self._deferred, {}
        if deferred and self.before_ack is not None:
            self.before_ack()
        n = 0
        for k, ids in deferred.items():
            self.r.xack(k, self.group, *ids)
            n += len(ids)
        return n

    def requeue_deferred(self) -> None:
        """The work the deferred entries triggered failed: they stay pending and this
        consumer re-reads them before anything new."""
        self._pending_first |= set(self._deferred)
        self._deferred.clear()

    def ensure_groups(self) -> None:
        """(Re)create this consumer's groups: after a Redis restart that lost them (NOGROUP),
        reading resumes with whatever is on the streams now."""
        for k in self._streams:
            try:
                self.r.xgroup_create(k, self.group, id="0", mkstream=True)
            except Exception as e:  # BUSYGROUP: still there
                if "BUSYGROUP" not in str(e):
                    raise
        self._pending_first = set(self._streams)  # re-registers this consumer, as after a start

    def poll(self, block_ms: int = 100, count: int = 500) -> int:
        """Deliver new (and, after a restart, own pending) messages; returns how many."""
        try:
            return self._poll(block_ms, count)
        except Exception as e:
            # whatever failed (a handler, an ack, or a read whose reply was lost while the
            # server already delivered), entries may now sit in this consumer's pending list
            self._pending_first = set(self._streams)
            if "NOGROUP" not in str(e):
                raise
            self.counters["groups_recreated"] += 1
            self.ensure_groups()
            return 0

    def _poll(self, block_ms: int, count: int) -> int:
        n = 0
        for k in list(self._pending_first):
            res = self.r.xreadgroup(self.group, self.consumer, {k: "0"}, count=count)
            entries = res[0][1] if res else []
            n += self._dispatch(k, entries, redelivery=True)
            if len(entries) < count:
                self._pending_first.discard(k)
        if not self._streams:
            return n
        if self._cluster:
            # a cluster command may only touch one slot: read stream by stream, then wait
            for k in self._streams:
                res = self.r.xreadgroup(self.group, self.consumer, {k: ">"}, count=count)
                for _, entries in res or []:
                    n += self._dispatch(k, entries)
            if n == 0 and block_ms:
                time.sleep(block_ms / 1000.0)
            return n
        res = self.r.xreadgroup(self.group, self.consumer, {k: ">" for k in self._streams},
                                count=count, block=block_ms if n == 0 and block_ms > 0 else None)
        for k, entries in res or []:
            n += self._dispatch(k.decode() if isinstance(k, bytes) else k, entries)
        return n

    def claim_stale(self, min_idle_ms: int = 5_000, count: int = 500) -> int:
        """Take over messages another (dead) consumer left unacknowledged."""
        n = 0
        for k in self._streams:
            res = self.r.xautoclaim(k, self.group, self.consumer, min_idle_time=min_idle_ms,
                                    start_id="0-0", count=count)
            entries = res[1] if res else []
            if entries:
                self.counters["claimed"] += len(entries)
                n += self._dispatch(k, entries, redelivery=True)
        return n

    def pending(self) -> int:
        return sum(int(self.r.xpending(k, self.group)["pending"]) for k in self._streams)


class RedisBlackboard:
    def __init__(self, client: Any, namespace: str = "hlq") -> None:
        self.r = client
        self.ns = namespace

    def _k(self, symbol: str) -> str:
        return f"{self.ns}:intent:{{{symbol}}}"

    def post(self, intent: Intent) -> None:
        p = self.r.pipeline(transaction=False)
        p.hset(self._k(intent.symbol), intent.agent, pack(intent))
        p.sadd(f"{self.ns}:symbols", intent.symbol)
        p.execute()

    def intents(self, symbol: str) -> dict[str, Intent]:
        raw = self.r.hgetall(self._k(symbol))
        return {(a.decode() if isinstance(a, bytes) else a): unpack(v) for a, v in raw.items()}  # type: ignore[misc]

    def remove(self, symbol: str, agent: str) -> Intent | None:
        k = self._k(symbol)
        p = self.r.pipeline(transaction=False)
        p.hget(k, agent)
        p.hdel(k, agent)
        v, _ = p.execute()
        return unpack(v) if v else None  # type: ignore[return-value]

    def symbols(self) -> list[str]:
        out = []
        for s in sorted(x.decode() for x in self.r.smembers(f"{self.ns}:symbols")):
            if self.r.hlen(self._k(s)):
                out.append(s)
        return out

    def remove_agent(self, agent: str) -> list[Intent]:
        out = []
        for s in sorted(x.decode() for x in self.r.smembers(f"{self.ns}:symbols")):
            it = self.remove(s, agent)
            if it is not None:
                out.append(it)
        return out


class RedisHeartbeats:
    """``alive`` compares the stored expiry with ``now`` (the caller's clock);
    the key's TTL only garbage-collects agents that are long gone."""

    def __init__(self, client: Any, namespace: str = "hlq", gc_factor: int = 10) -> None:
        self.r = client
        self.ns = namespace
        self.gc_factor = gc_factor

    def _k(self, agent: str) -> str:
        return f"{self.ns}:hb:{{{agent}}}"

    def beat(self, agent: str, now: int, ttl_ms: int) -> None:
        p = self.r.pipeline(transaction=False)
        p.set(self._k(agent), f"{now}:{now + ttl_ms}", px=max(ttl_ms * self.gc_factor, 1000))
        p.sadd(f"{self.ns}:agents", agent)
        p.execute()

    def _get(self, agent: str) -> tuple[int, int] | None:
        v = self.r.get(self._k(agent))
        if not v:
            return None
        last, exp = (v.decode() if isinstance(v, bytes) else v).split(":")
        return int(last), int(exp)

    def alive(self, agent: str, now: int) -> bool:
        rec = self._get(agent)
        return rec is not None and now <= rec[1]

    def expire(self, agent: str) -> None:
        """Declare the agent dead now (quarantine): its last beat stays, its expiry goes."""
        rec = self._get(agent)
        last = rec[0] if rec else 0
        self.r.set(self._k(agent), f"{last}:{-1}", px=3_600_000)

    def last_seen(self, agent: str) -> int | None:
        rec = self._get(agent)
        return None if rec is None else rec[0]

    def agents(self) -> list[str]:
        return sorted(x.decode() for x in self.r.smembers(f"{self.ns}:agents"))


class RedisIdempotencyStore:
    def __init__(self, client: Any, namespace: str = "hlq", state_ttl_ms: int = 7 * 86_400_000) -> None:
        self.r = client
        self.ns = namespace
        self.state_ttl_ms = state_ttl_ms

    def _k(self, key: str) -> str:
        return f"{self.ns}:idem:{{{key}}}"

    def claim(self, key: str, owner: str, ttl_ms: int, now: int) -> bool:
        return bool(self.r.set(self._k(key), owner, nx=True, px=max(int(ttl_ms), 1)))

    def owner(self, key: str, now: int) -> str | None:
        v = self.r.get(self._k(key))
        return v.decode() if v else None

    def mark(self, key: str, state: str) -> None:
        self.r.set(self._k(key) + ":state", state, px=self.state_ttl_ms)

    def state(self, key: str) -> str | None:
        v = self.r.get(self._k(key) + ":state")
        return v.decode() if v else None


class RedisFeatureStore:
    """Same contract as InMemoryFeatureStore; one round trip per write batch / read batch."""

    def __init__(self, client: Any, rules: StalenessRules | Mapping[str, int] | None = None,
                 namespace: str = "hlq") -> None:
        self.r = client
        self.ns = namespace
        self.rules = rules if isinstance(rules, StalenessRules) else StalenessRules(rules)
        self.stale_reads: Counter = Counter()
        self.writes = 0

    def _k(self, symbol: str) -> str:
        return f"{self.ns}:feat:{{{symbol}}}"

    key = _k

    @staticmethod
    def encode(items: Iterable[tuple[str, float]], ts: int) -> dict[str, bytes]:
        """Hash fields of values written at ``ts`` (for callers writing in their own transaction)."""
        return {name: msgpack.packb([float(v), int(ts)]) for name, v in items}

    def put(self, symbol: str, name: str, value: float, ts: int) -> None:
        self.r.hset(self._k(symbol), name, msgpack.packb([float(value), int(ts)]))
        self.writes += 1

    def put_many(self, symbol: str, items: Iterable[tuple[str, float]], ts: int) -> None:
        mapping = {name: msgpack.packb([float(v), int(ts)]) for name, v in items}
        if mapping:
            self.r.hset(self._k(symbol), mapping=mapping)
            self.writes += len(mapping)

    def put_batch(self, rows: Iterable[tuple[str, str, float, int]]) -> int:
        """Many (symbol, name, value, ts) in one pipeline."""
        p = self.r.pipeline(transaction=False)
        n = 0
        for sym, name, v, ts in rows:
            p.hset(self._k(sym), name, msgpack.packb([float(v), int(ts)]))
            n += 1
        p.execute()
        self.writes += n
        return n

    def _check(self, symbol: str, name: str, raw: bytes | None, now: int) -> float:
        limit = self.rules.max_age(name)
        if raw is None:
            self.stale_reads[name] += 1
            raise StaleFeatureError(symbol, name, None, limit)
        value, ts = msgpack.unpackb(raw)
        if now - ts > limit:
            self.stale_reads[name] += 1
            raise StaleFeatureError(symbol, name, now - ts, limit)
        return value

    def get(self, symbol: str, name: str, now: int) -> float:
        return self._check(symbol, name, self.r.hget(self._k(symbol), name), now)

    def get_many(self, symbol: str, names: Sequence[str], now: int) -> dict[str, float]:
        """Fresh values in one round trip; raises on the first stale one."""
        raws = self.r.hmget(self._k(symbol), list(names))
        return {n: self._check(symbol, n, raw, now) for n, raw in zip(names, raws, strict=True)}

    def get_with_ts(self, symbol: str, name: str) -> tuple[float, int] | None:
        raw = self.r.hget(self._k(symbol), name)
        if raw is None:
            return None
        v, ts = msgpack.unpackb(raw)
        return float(v), int(ts)


def redis_client(url: str = "redis://127.0.0.1:6379/0", cluster: bool = False) -> Any:
    """A client for the shared state (a Redis Cluster client when ``cluster``)."""
    import redis

    if cluster:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(url)
    return redis.Redis.from_url(url)


def _account_key(ns: str) -> str:
    return f"{ns}:acct:{{account}}"


class RedisAccountPublisher:
    """Publishes the account read model (hash ``<ns>:acct:{account}``): the process
    that owns the portfolio calls ``publish`` after fills and on a timer, so agents in
    other processes read positions, entry prices, equity and open orders, and can tell
    from ``ts`` how old that view is."""

    def __init__(self, client: Any, namespace: str = "hlq") -> None:
        self.r = client
        self.key = _account_key(namespace)
        self.published = 0

    def publish(self, now: int, portfolio: Any, orders: Sequence[Any], fills: int = 0, queued: int = 0) -> None:
        """``fills``: fills the portfolio has applied; ``queued``: approved orders not yet
        sent (drills wait on both)."""
        positions = {s: [p.size, p.entry_px] for s, p in portfolio.positions.items() if p.size}
        self.r.hset(self.key, mapping={
            "ts": int(now),
            "fills": int(fills),
            "queued": int(queued),
            "equity": float(portfolio.equity()),
            "positions": msgpack.packb(positions),
            "orders": msgpack.packb([[o.cloid, o.symbol, o.agent, int(o.side), o.size, o.px, int(o.tif),
                                      o.reduce_only, o.trigger_px] for o in orders]),
        })
        self.published += 1


class RedisAccountView:
    """The agents' side of the read model (``hlquant.agents.account.Account``): one
    round trip per decision time; older than ``max_age_ms`` is refused with
    ``StaleFeatureError`` (the decision is skipped and counted, never taken blind)."""

    def __init__(self, client: Any, namespace: str = "hlq", max_age_ms: int = 5_000) -> None:
        self.r = client
        self.key = _account_key(namespace)
        self.max_age_ms = int(max_age_ms)
        self._at: int | None = None
        self._snap: dict[str, Any] = {}

    def _load(self, now: int) -> dict[str, Any]:
        if self._at != now:
            raw = {(k.decode() if isinstance(k, bytes) else k): v for k, v in self.r.hgetall(self.key).items()}
            self._snap = {
                "ts": int(raw["ts"]) if "ts" in raw else None,
                "equity": float(raw.get("equity", "nan")),
                "positions": msgpack.unpackb(raw["positions"]) if "positions" in raw else {},
                "orders": msgpack.unpackb(raw["orders"]) if "orders" in raw else [],
            }
            self._at = now
        snap = self._snap
        ts = snap["ts"]
        if ts is None or now - ts > self.max_age_ms:
            raise StaleFeatureError("*", "account", None if ts is None else now - ts, self.max_age_ms)
        return snap

    def position(self, symbol: str, now: int) -> float:
        p = self._load(now)["positions"].get(symbol)
        return float(p[0]) if p else 0.0

    def entry_price(self, symbol: str, now: int) -> float:
        p = self._load(now)["positions"].get(symbol)
        return float(p[1]) if p else 0.0

    def equity(self, now: int) -> float:
        return self._load(now)["equity"]

    def open_orders(self, symbol: str | None, now: int) -> list[Any]:
        from hlquant.core.events import OrderView, Side, Tif

        return [OrderView(c, s, a, Side(side), sz, px, Tif(tif), ro, trig)
                for c, s, a, side, sz, px, tif, ro, trig in self._load(now)["orders"]
                if symbol is None or s == symbol]
