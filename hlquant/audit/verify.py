"""``hlquant audit verify RUN_DIR``: is the record of a session complete?

Reads every audit log under a run folder (one per component in the
multi-process topology) and, optionally, the components' Redis audit streams
(rows a crash took from a local log may be there), then reports:

- sequence gaps in each log that no stream row fills (records lost in a crash). A
  component that mirrors to a stream makes every record durable there before it
  acts on it (sends an order, acknowledges an input); numbers after the last
  mirrored record of a gap were reserved but never acted on, and are listed
  apart (``unsynced``) rather than as losses;
- intents without a risk decision;
- orders without an approved risk decision;
- fills without an order (of this session).

Exit status 0 when nothing is missing, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hlquant.audit.log import read_audit


@dataclass
class VerifyReport:
    logs: dict[str, int] = field(default_factory=dict)  # audit dir -> rows
    gaps: list[tuple[str, int, int]] = field(default_factory=list)  # (log, last seq seen, next seq)
    unsynced: list[tuple[str, int, int]] = field(default_factory=list)  # mirrored logs: never acted on
    intents_without_decision: list[str] = field(default_factory=list)
    orders_without_approval: list[str] = field(default_factory=list)
    fills_without_order: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.gaps or self.intents_without_decision or self.orders_without_approval
                    or self.fills_without_order)

    def __str__(self) -> str:
        rows = sum(self.logs.values())
        head = f"audit {'complete' if self.ok else 'INCOMPLETE'}: {len(self.logs)} logs, {rows:,} records"
        lines = [head]
        if self.unsynced:
            lines.append(f"  {len(self.unsynced)} reserved ranges never acted on (after the last record "
                         f"mirrored): {', '.join(f'{log}: {a + 1}..{b - 1}' for log, a, b in self.unsynced)}")
        for what, items in (("sequence gaps", [f"{log}: after {a} next {b}" for log, a, b in self.gaps]),
                            ("intents without a risk decision", self.intents_without_decision),
                            ("orders without an approved decision", self.orders_without_approval),
                            ("fills without an order", self.fills_without_order)):
            if items:
                lines.append(f"  {len(items)} {what}: {', '.join(map(str, items[:10]))}"
                             + (" ..." if len(items) > 10 else ""))
        return "\n".join(lines)


def _logs(run_dir: Path) -> dict[str, pd.DataFrame]:
    dirs = sorted({p.parent for p in run_dir.rglob("part-*.parquet")})
    return {str(d.relative_to(run_dir)) or ".": read_audit(d) for d in dirs}


def _stream_rows(redis_url: str, namespace: str) -> pd.DataFrame:
    """Rows the components mirrored to ``<ns>:Audit:{component}`` streams."""
    import redis

    r = redis.Redis.from_url(redis_url)
    frames = []
    for key in r.scan_iter(f"{namespace}:Audit:*", _type="stream"):
        rows = [json.loads(f[b"d"]) for _id, f in r.xrange(key) if f]
        if rows:
            frames.append(pd.DataFrame(rows))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _records(frames: list[pd.DataFrame]) -> list[dict[str, Any]]:
    allrows = pd.concat(frames, ignore_index=True).drop_duplicates(subset=["session", "seq"])
    allrows = allrows.sort_values(["ts_exch", "session", "seq"], kind="stable")
    return [dict(json.loads(p), kind=k, symbol=sym, agent=ag, ts_exch=int(t), ts_recv=int(tr), session=str(se),
                 seq=int(q))
            for p, k, sym, ag, t, tr, se, q in zip(allrows["payload"], allrows["kind"], allrows["symbol"],
                                                   allrows["agent"], allrows["ts_exch"], allrows["ts_recv"],
                                                   allrows["session"], allrows["seq"], strict=True)]


def load_records(run_dir: str | Path, redis_url: str | None = None,
                 namespace: str | None = None) -> list[dict[str, Any]]:
    """Every record of a run: its audit logs plus what the components mirrored to Redis
    (each record once), ordered by exchange time."""
    frames = [df for df in _logs(Path(run_dir)).values() if len(df)]
    if redis_url and namespace:
        streamed = _stream_rows(redis_url, namespace)
        if len(streamed):
            frames.append(streamed)
    return _records(frames) if frames else []


def verify(run_dir: str | Path, redis_url: str | None = None, namespace: str | None = None) -> VerifyReport:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        from hlquant.core.errors import ConfigError

        raise ConfigError(f"{run_dir}: not a directory")
    logs = _logs(run_dir)
    rep = VerifyReport(logs={k: len(v) for k, v in logs.items()})
    streamed = _stream_rows(redis_url, namespace) if redis_url and namespace else pd.DataFrame()
    by_session: dict[str, set[int]] = {}
    if len(streamed):
        for sess, seq in zip(streamed["session"], streamed["seq"], strict=True):
            by_session.setdefault(str(sess), set()).add(int(seq))
    frames = []
    for name, df in logs.items():
        if not len(df):
            continue
        seqs = df["seq"].to_numpy()
        sessions = set(df["session"].astype(str))
        covered = set().union(*(by_session.get(s, set()) for s in sessions)) if by_session else set()
        for a, b in zip(seqs[:-1], seqs[1:], strict=True):
            a, b = int(a), int(b)
            if b - a <= 1:
                continue
            if not covered:
                rep.gaps.append((name, a, b))
                continue
            last = max((x for x in covered if a < x < b), default=a)
            if any(x not in covered for x in range(a + 1, last + 1)):
                rep.gaps.append((name, a, b))  # a hole inside what was mirrored: lost
            elif last + 1 < b:
                rep.unsynced.append((name, last, b))
        frames.append(df)
    if len(streamed):
        frames.append(streamed[[c for c in streamed.columns if c in ("session", "seq", "kind", "payload", "id",
                                                                     "agent", "symbol", "ts_exch", "ts_recv")]])
    if not frames:
        return rep
    recs = _records(frames)
    intents = {r["intent_id"] for r in recs if r["kind"] == "Intent"}
    decided = {r["intent_id"] for r in recs if r["kind"] == "RiskDecision"}
    approved = {r["intent_id"] for r in recs if r["kind"] == "RiskDecision" and r.get("approved")}
    orders = {r["cloid"]: r["intent_id"] for r in recs if r["kind"] == "OrderRequest"}
    rep.intents_without_decision = sorted(intents - decided)
    rep.orders_without_approval = sorted(c for c, i in orders.items() if i not in approved)
    rep.fills_without_order = sorted({f"{r.get('symbol', '')}:{r.get('oid')}" for r in recs
                                      if r["kind"] == "Fill" and r.get("cloid") not in orders})
    return rep


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hlquant audit", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="check that a session's record is complete")
    v.add_argument("run_dir", help="a backtest, paper, live or multi-process run folder")
    v.add_argument("--redis", default=None, help="Redis URL of the components' audit streams (optional)")
    v.add_argument("--namespace", default=None, help="live.namespace of that session (with --redis)")
    a = ap.parse_args(list(argv) if argv is not None else None)
    rep: Any = verify(a.run_dir, a.redis, a.namespace)
    print(rep)
    return 0 if rep.ok else 1
