"""Settings of paper and live sessions (the ``live`` block of the config).

One frozen dataclass, one place for each default: the Hydra config takes its
``live`` node from this class (``hlquant.config.schema``), and a key that is
not a field here is an error naming it, like ``RiskConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass

TOPOLOGIES = ("single", "processes")
CLOCKS = ("wall", "event")


@dataclass(frozen=True)
class LiveConfig:
    """Paper / live sessions. The signer key is never configured here.

    - network ("testnet"): testnet | mainnet | local (local needs url).
    - url (None): explicit REST base URL, e.g. the fake exchange http://127.0.0.1:8765.
    - ws_url (None): WebSocket URL; default derived from url (+ /ws).
    - account_address (None): the master account an agent key signs for.
    - key_env ("HLQUANT_PRIVATE_KEY") / key_file (None): where the signer key comes from.
    - confirm_mainnet (False): mainnet is refused without it.
    - dead_mans_switch_ms (60_000): keep the exchange's scheduleCancel armed this far
      ahead (0: off).
    - cancel_on_shutdown (True): cancel open orders on a clean stop.
    - reconcile_s (30): live: compare positions with the exchange this often.
    - candle_interval ("1m"): candle subscription of the market feed.
    - duration_s (None): stop after this many seconds (None: until SIGINT/SIGTERM).
    - topology ("single"): ``single`` = every component in one asyncio process
      (in-memory state); ``processes`` = one supervised process per role on Redis.
    - router_replicas (2) / feature_replicas (1): processes of those roles.
    - clock ("wall"): ``wall`` for trading; ``event`` makes every process follow the
      exchange timestamps of the events (replays and parity drills).
    - redis_url, redis_cluster (False), namespace ("hlq"): the shared state of the
      multi-process topology; keys carry ``{SYMBOL}`` hash tags.
    - redis_wait_s (30): how long a starting component waits for Redis to answer before it
      gives up with one line naming the address (a Redis restarting is waited for; a wrong
      address is an error, not an outage).
    - stream_maxlen (100_000): approximate cap of each Redis stream.
    - claim_ttl_ms (5_000): a router replica's claim on a cloid (and a stream processor's
      lease on a symbol) before another may take over; a replica's orders expire at the
      exchange 1 s before its claim does, so a replica that takes over can never place an
      order the dead one sent a second time.
    - heartbeat_check_s (1.0): how often the risk process checks heartbeats.
    - account_max_age_ms (5_000): agents in other processes refuse an account read
      model older than this (the decision is skipped and counted, as for a stale feature).
    - audit_stream (True): components also put their audit batches on
      ``<ns>:Audit:{component}`` for the storage writer.
    - audit_flush_every (200): audit rows buffered before a segment is written.
    - status_every_s (10): how often a session rewrites status.json.
    """

    network: str = "testnet"
    url: str | None = None
    ws_url: str | None = None
    account_address: str | None = None
    key_env: str = "HLQUANT_PRIVATE_KEY"
    key_file: str | None = None
    confirm_mainnet: bool = False
    dead_mans_switch_ms: int = 60_000
    cancel_on_shutdown: bool = True
    reconcile_s: float = 30.0
    candle_interval: str = "1m"
    duration_s: float | None = None
    topology: str = "single"
    router_replicas: int = 2
    feature_replicas: int = 1
    clock: str = "wall"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_cluster: bool = False
    redis_wait_s: float = 30.0
    namespace: str = "hlq"
    stream_maxlen: int = 100_000
    claim_ttl_ms: int = 5_000
    heartbeat_check_s: float = 1.0
    account_max_age_ms: int = 5_000
    audit_stream: bool = True
    audit_flush_every: int = 200
    status_every_s: float = 10.0

    def __post_init__(self) -> None:
        if self.network not in ("testnet", "mainnet", "local"):
            raise ValueError(f"live.network must be testnet, mainnet or local, got {self.network!r}")
        if self.topology not in TOPOLOGIES:
            raise ValueError(f"live.topology must be one of {TOPOLOGIES}, got {self.topology!r}")
        if self.clock not in CLOCKS:
            raise ValueError(f"live.clock must be one of {CLOCKS}, got {self.clock!r}")
        for name in ("router_replicas", "feature_replicas", "stream_maxlen", "audit_flush_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"live.{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("dead_mans_switch_ms", "claim_ttl_ms", "account_max_age_ms", "reconcile_s",
                     "heartbeat_check_s", "status_every_s", "redis_wait_s"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"live.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.claim_ttl_ms < 2_000:
            raise ValueError(f"live.claim_ttl_ms must be >= 2000 (orders expire 1 s before the claim), "
                             f"got {self.claim_ttl_ms!r}")
        if self.dead_mans_switch_ms and self.dead_mans_switch_ms < 10_000:
            raise ValueError("live.dead_mans_switch_ms must be 0 (off) or >= 10000: the exchange needs "
                             "the cancel time at least 5 s ahead and the switch is re-armed at half")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError(f"live.duration_s must be > 0 or null, got {self.duration_s!r}")
