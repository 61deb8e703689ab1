"""Run the multi-process topology as real OS processes and wait on its state.

Drills, soak runs and the end-to-end tests start the roles of
``live.topology=processes`` (ingest, stream processors, agents, risk, router
replicas) as ``hlquant component`` subprocesses, kill and restart them, and
wait for *conditions* on the shared Redis state — every role subscribed,
every stream drained and acknowledged — with a deadline, never for a fixed
time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hlquant.bus.redis_state import redis_client


class DrillTimeout(AssertionError):
    """A condition did not hold before its deadline; the message says what was seen."""


def wait_for(cond: Callable[[], Any], timeout_s: float, what: str, poll_s: float = 0.05,
             state: Callable[[], Any] | None = None) -> Any:
    """Poll ``cond`` until it returns something truthy or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() >= deadline:
            seen = f"; state: {state()}" if state is not None else ""
            raise DrillTimeout(f"{what}: not reached within {timeout_s:.0f} s{seen}")
        time.sleep(poll_s)


@dataclass
class Drill:
    """Role processes sharing one Redis namespace (see module docstring)."""

    overrides: Sequence[str]  # hydra overrides every role gets (live.url, live.namespace, ...)
    out: Path
    namespace: str
    redis_url: str
    agents: Sequence[str]
    symbols: Sequence[str]
    routers: int = 2
    features: int = 1
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    cwd: Path | None = None
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.r = redis_client(self.redis_url)

    # --- processes ------------------------------------------------------------------
    @staticmethod
    def _args(tag: str) -> list[str]:
        role, _, name = tag.partition("-")
        return [role, name] if name else [role]

    def start(self, tag: str) -> subprocess.Popen:
        """Start ``tag`` (``ingest``, ``risk``, ``features-f1``, ``agent-a1``, ``router-r1``)."""
        log = open(self.out / f"{tag}.log", "ab")
        p = subprocess.Popen(
            [sys.executable, "-m", "hlquant.cli", "component", *self._args(tag), *self.overrides,
             f"hydra.run.dir={self.out / tag}"],
            cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs[tag] = p
        return p

    def tags(self) -> list[str]:
        return (["ingest", "risk"] + [f"features-f{i + 1}" for i in range(self.features)]
                + [f"router-r{i + 1}" for i in range(self.routers)] + [f"agent-{a}" for a in self.agents])

    def start_all(self) -> None:
        for tag in self.tags():
            self.start(tag)

    def kill(self, tag: str, sig: int = signal.SIGKILL) -> None:
        p = self.procs[tag]
        p.send_signal(sig)
        p.wait(15)

    def stop_all(self, order: Iterable[str] | None = None, timeout_s: float = 20.0) -> None:
        """SIGTERM in ``order`` (default: agents, stream processors, ingest, risk, routers).
        Routers stop only once the order and cancel streams are drained, so the risk
        process's shutdown cancels reach the exchange."""
        order = list(order or [t for t in self.procs if t.startswith("agent")]
                     + [t for t in self.procs if t.startswith("features")]
                     + ["ingest", "risk"] + [t for t in self.procs if t.startswith("router")])
        routers_waited = False
        for tag in order:
            if tag.startswith("router") and not routers_waited:
                routers_waited = True
                try:
                    wait_for(lambda: not [k for k in self.backlog() if "Request:" in k or "Modify:" in k],
                             timeout_s, "routers drained the order and cancel streams")
                except DrillTimeout:
                    pass  # stopping anyway; the caller's checks will say what was left
            p = self.procs.get(tag)
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def logs(self, tail: int = 3000) -> dict[str, str]:
        return {p.stem: p.read_text(errors="replace")[-tail:] for p in self.out.glob("*.log")}

    def dead(self) -> dict[str, int]:
        return {t: p.returncode for t, p in self.procs.items() if p.poll() is not None}

    # --- shared state ---------------------------------------------------------------
    def _key(self, topic: str) -> str:
        return f"{self.namespace}:{topic}"

    def _consumers(self, topic: str, group: str) -> set[str]:
        try:
            return {c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
                    for c in self.r.xinfo_consumers(self._key(topic), group)}
        except Exception:  # no such stream or group yet
            return set()

    def ready(self) -> bool:
        """Every role has subscribed: consumer groups and consumers exist, leases are held."""
        s0 = self.symbols[0]
        if "risk-0" not in self._consumers(f"Intent:{{{s0}}}", "risk"):
            return False
        routers = self._consumers(f"OrderRequest:{{{s0}}}", "routers")
        if not {f"r{i + 1}" for i in range(self.routers)} <= routers:
            return False
        if not all(any("c0" in self._consumers(f"FeaturesReady:{{{s}}}", f"agent-{a}") for s in self.symbols)
                   for a in self.agents):
            return False
        return all(self.r.exists(self._key(f"flease:{{{s}}}")) for s in self.symbols)

    STAGES = ("FundingRate", "BookSnapshot", "BBO", "Trade", "Candle", "MarkPrice", "FeaturesReady", "Intent",
              "OrderRequest", "CancelRequest", "Modify", "LeverageRequest", "Exec", "Audit")

    def streams(self) -> list[str]:
        """Stream keys in the order work flows through them: each stage writes downstream
        before it acknowledges upstream, so one pass in this order cannot miss work in flight."""
        keys = [k.decode() for k in self.r.scan_iter(f"{self.namespace}:*", _type="stream")]
        rank = {s: i for i, s in enumerate(self.STAGES)}
        return sorted(keys, key=lambda k: (rank.get(k.split(":")[-2], len(rank)), k))

    def backlog(self) -> dict[str, int]:
        """Entries not yet delivered or delivered but not acknowledged, per stream and
        group; empty when every consumer has caught up.

        "Delivered" is read from the group's last-delivered id against the stream's
        last-generated id, not from Redis' ``lag``: after a restart from the append-only
        file ``lag`` can stay at hundreds on a group that has read everything (seen in
        the 10-minute soak: last-delivered == last-generated, pending 0, lag 800)."""
        out: dict[str, int] = {}
        for k in self.streams():
            if ":Audit:" in k:
                continue  # read by the storage writer, which drills may not run
            last = _sid(self.r.xinfo_stream(k)["last-generated-id"])
            for g in self.r.xinfo_groups(k):
                name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
                delivered = g["last-delivered-id"]
                undelivered = 0
                if _sid(delivered) < last:
                    d = delivered.decode() if isinstance(delivered, bytes) else delivered
                    undelivered = len(self.r.xrange(k, f"({d}", "+", count=10_000))
                n = int(g.get("pending") or 0) + undelivered
                if n:
                    out[f"{k}/{name}"] = n
        return out

    def idle(self) -> bool:
        """Every stream drained and acknowledged, and the risk process holds no approved
        order waiting for rate budget."""
        return not self.backlog() and not self.account().get("queued", 0)

    def account(self) -> dict[str, Any]:
        """The risk process's account read model (positions, fills applied, ts)."""
        import msgpack

        raw = {k.decode(): v for k, v in self.r.hgetall(self._key("acct:{account}")).items()}
        if not raw:
            return {}
        return {"ts": int(raw["ts"]), "fills": int(raw.get("fills", 0)), "queued": int(raw.get("queued", 0)),
                "positions": {s: p[0] for s, p in msgpack.unpackb(raw["positions"]).items()}}

    def cleanup(self) -> None:
        for k in self.r.scan_iter(f"{self.namespace}:*"):
            self.r.delete(k)


def _sid(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry id as a comparable (ms, seq)."""
    t = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = t.partition("-")
    return int(ms), int(seq or 0)
