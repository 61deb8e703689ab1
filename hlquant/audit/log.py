"""AuditLog: the append-only record of a session.

Every intent, risk decision, order, ack, fill, cancel, funding payment and
heartbeat loss is appended with a sequence number, both timestamps and its
ids. Rows share one schema (common columns + a JSON ``payload``) so that the
same records load into Parquet, PostgreSQL and ClickHouse unchanged.

Crash safety: rows are buffered and written as numbered Parquet segment
files (``part-000001.parquet``...) with write-to-temp-then-rename, so a crash
loses at most the unflushed buffer and never leaves a half-written file. That
loss is never silent: sequence numbers are reserved on disk in blocks
(``seq.reserved``) before they are used, and a log reopened after a crash
continues after the reserved block, so the rows a crash took show as a gap in
``seq`` (``hlquant audit verify`` reports it). With a ``mirror`` (the live
components' Redis audit streams), ``sync()`` puts the buffered rows there at
once; the router calls it before any order leaves, so a decision is durable
before its order exists. Secrets never reach the log: payload keys that look
like secrets are redacted.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hlquant.core.events import Event

AUDIT_SCHEMA = pa.schema(
    [
        ("session", pa.string()),
        ("seq", pa.int64()),
        ("ts_exch", pa.int64()),
        ("ts_recv", pa.int64()),
        ("kind", pa.string()),
        ("id", pa.string()),
        ("agent", pa.string()),
        ("symbol", pa.string()),
        ("payload", pa.string()),
    ]
)

_COMMON = {"kind", "ts_exch", "ts_recv", "agent", "symbol"}
_ID_FIELDS = ("cloid", "intent_id")
_SECRET_RE = re.compile(r"(secret|private|priv_?key|password|api_?key|mnemonic)", re.I)
_HEX_KEY_RE = re.compile(r"(?<![0-9a-fA-F])(?:0x)?[0-9a-fA-F]{64}(?![0-9a-fA-F])")


def looks_secret(key: str, value: str) -> bool:
    """A secret-looking key name, or a value holding 32 bytes of hex (a private key)."""
    return bool(_SECRET_RE.search(key)) or bool(_HEX_KEY_RE.search(str(value)))


def redact_text(text: str) -> str:
    """``text`` with every 32-byte hex string (with or without 0x) replaced by ``***``."""
    return _HEX_KEY_RE.sub("***", text)


def redact(obj: Any) -> Any:
    """Replace values under secret-looking keys, and 32-byte hex strings (private
    keys, with or without 0x) anywhere, with ``'***'``."""
    if isinstance(obj, dict):
        return {
            k: ("***" if isinstance(k, str) and _SECRET_RE.search(k) else redact(v))
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    if isinstance(obj, str) and _HEX_KEY_RE.search(obj):
        return _HEX_KEY_RE.sub("***", obj)
    return obj


def _default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "name"):
        return o.name
    return str(o)


class AuditLog:
    """Append-only audit log.

    - path: directory for Parquet segments, or None to keep rows in memory only.
    - session: session id written on every row.
    - flush_every: rows buffered before a segment is written.
    """

    def __init__(self, path: str | Path | None, session: str = "session", flush_every: int = 20_000,
                 mirror: Any = None):
        """``mirror(rows)``, if given, also receives every flushed batch (dicts with the audit
        columns), e.g. to put them on a Redis stream for the storage writer."""
        self.mirror = mirror
        self.path = Path(path) if path is not None else None
        self.session = session
        self.flush_every = flush_every
        self.seq = 0
        self._buf: list[tuple] = []
        self._mem: list[tuple] = []
        self._mirrored = 0  # rows at the head of _buf already given to the mirror
        self._segment = 0
        self._reserved = 0
        self.counts: dict[str, int] = {}
        if self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)
            existing = sorted(self.path.glob("part-*.parquet"))
            if existing:  # resume an existing log: continue numbering, never overwrite
                self._segment = int(existing[-1].stem.split("-")[1])
                tail = pq.read_table(existing[-1], columns=["seq"]).column("seq")
                self.seq = int(tail[len(tail) - 1].as_py()) if len(tail) else 0
            reserved = self.path / "seq.reserved"
            if reserved.exists():  # a crash left rows numbered up to here unwritten: skip them
                self.seq = max(self.seq, int(reserved.read_text().split()[0]))
            self._reserved = self.seq

    RESERVE = 1_000

    def _reserve(self) -> None:
        """Put the end of the next block of sequence numbers on disk before using it."""
        self._reserved = self.seq + self.RESERVE
        f = self.path / "seq.reserved"
        tmp = f.with_suffix(".tmp")
        tmp.write_text(f"{self._reserved}\n")
        os.replace(tmp, f)

    def record(self, event: Event, **extra: Any) -> int:
        """Append one event (plus extra fields into the payload); returns its seq."""
        rec = event.to_record()
        if extra:
            rec.update(extra)
        return self.record_dict(rec)

    def record_dict(self, rec: dict[str, Any]) -> int:
        if self.path is not None and self.seq >= self._reserved:
            self._reserve()
        self.seq += 1
        kind = rec.get("kind", "?")
        self.counts[kind] = self.counts.get(kind, 0) + 1
        ident = next((rec[f] for f in _ID_FIELDS if rec.get(f)), "")
        payload = {k: v for k, v in rec.items() if k not in _COMMON}
        row = (
            self.session,
            self.seq,
            int(rec.get("ts_exch", 0)),
            int(rec.get("ts_recv", 0)),
            kind,
            str(ident),
            str(rec.get("agent", "") or ""),
            str(rec.get("symbol", "") or ""),
            json.dumps(redact(payload), default=_default, separators=(",", ":")),
        )
        self._buf.append(row)
        if len(self._buf) >= self.flush_every:
            self.flush()
        return self.seq

    def extend(self, events: Iterable[Event]) -> None:
        for ev in events:
            self.record(ev)

    def sync(self) -> int:
        """Give the buffered rows not yet mirrored to the mirror now (no Parquet write);
        returns how many. Without a mirror there is nothing faster than ``flush``."""
        if self.mirror is None or self._mirrored >= len(self._buf):
            return 0
        rows = self._buf[self._mirrored:]
        self.mirror([dict(zip(AUDIT_SCHEMA.names, r, strict=True)) for r in rows])
        self._mirrored = len(self._buf)
        return len(rows)

    def flush(self) -> None:
        """Write the buffer as a new segment (atomic rename) or keep it in memory."""
        if not self._buf:
            return
        self.sync()
        rows, self._buf = self._buf, []
        self._mirrored = 0
        if self.path is None:
            self._mem.extend(rows)
            return
        cols = list(zip(*rows, strict=True))
        table = pa.Table.from_arrays([pa.array(c, t.type) for c, t in zip(cols, AUDIT_SCHEMA, strict=True)], schema=AUDIT_SCHEMA)
        self._segment += 1
        final = self.path / f"part-{self._segment:06d}.parquet"
        tmp = final.with_suffix(".tmp")
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, final)

    def close(self) -> None:
        """Flush, and on a clean close release the unused reservation (no false gap)."""
        self.flush()
        if self.path is not None and self._reserved > self.seq:
            self._reserved = self.seq
            (self.path / "seq.reserved").write_text(f"{self.seq}\n")

    def frame(self) -> pd.DataFrame:
        """All rows written so far (flushes first)."""
        self.flush()
        if self.path is None:
            return pd.DataFrame(self._mem, columns=AUDIT_SCHEMA.names)
        return read_audit(self.path)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_audit(path: str | Path) -> pd.DataFrame:
    """Load an audit directory into a DataFrame ordered by seq."""
    path = Path(path)
    parts = sorted(path.glob("part-*.parquet"))
    if not parts:
        return pd.DataFrame(columns=AUDIT_SCHEMA.names)
    df = pq.read_table(parts).to_pandas() if len(parts) == 1 else pd.concat(
        [pq.read_table(p).to_pandas() for p in parts], ignore_index=True
    )
    return df.sort_values("seq", kind="stable").reset_index(drop=True)


def payloads(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Decode the JSON payloads of an audit frame, merged with the common columns."""
    out = []
    for row in df.itertuples(index=False):
        d = json.loads(row.payload)
        d.update(kind=row.kind, ts_exch=row.ts_exch, ts_recv=row.ts_recv, agent=row.agent, symbol=row.symbol)
        out.append(d)
    return out
