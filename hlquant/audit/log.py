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
before its order exists.
Secrets never reach the log: payload keys that look like secrets are redacted,
and so is any 32-byte hex string in a text value.

Recording is cheap: an event's field values are appended to its class's
column buffer as they are, and a segment's columns, JSON payloads included,
are built a column at a time when it is written (Arrow). Only text can hold a
secret, so only text columns are searched; the rows are exactly those the log
wrote when it encoded one record at a time (tests/audit pin this).
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
import os
import re
from collections.abc import Callable, Iterable
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hlquant.core.events import Event
from hlquant.core.secrets import HEX_KEY_RE, SECRET_KEY_RE, redact

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
def _default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "name"):
        return o.name
    return str(o)


_dumps = json.JSONEncoder(default=_default, separators=(",", ":")).encode
_encode_str = json.encoder.encode_basestring_ascii  # what json.dumps does with a str (ensure_ascii)
_FLOAT_SPECIAL = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _encode_value(v: Any) -> str:
    """One payload value as JSON, exactly as ``json.dumps(redact(v))`` writes it."""
    t = type(v)
    if t is str:
        return _encode_str(HEX_KEY_RE.sub("***", v)) if HEX_KEY_RE.search(v) else _encode_str(v)
    if t is float:
        r = float.__repr__(v)
        return _FLOAT_SPECIAL.get(r, r)
    if t is int:
        return int.__repr__(v)
    if v is None:
        return "null"
    if t is bool:
        return "true" if v else "false"
    if isinstance(v, IntEnum):
        return _encode_str(v.name)
    return _dumps(redact(v.tolist() if isinstance(v, np.ndarray) else v))


def _encode_column(key: str, col: list) -> list[str]:
    """A payload field of many records as JSON fragments, a whole column at a time.

    Only text can hold a secret: a string column is searched once (joined) for a
    32-byte hex string and redacted value by value only if one is there; numbers,
    flags and enums are formatted without a look. A key that names a secret hides
    the whole column. Mixed or nested values take the exact per-value path."""
    n = len(col)
    if SECRET_KEY_RE.search(key):
        return ['"***"'] * n
    types = set(map(type, col))
    if len(types) == 1:
        t = next(iter(types))
        if t is float:
            out = list(map(float.__repr__, col))
            if not all(map(math.isfinite, col)):
                out = [_FLOAT_SPECIAL.get(r, r) for r in out]
            return out
        if t is str:
            # a 32-byte hex key needs 64 characters: shorter texts (ids, names) need no look
            if max(map(len, col)) >= 64 and HEX_KEY_RE.search("\n".join(col)):
                return list(map(_encode_value, col))
            return list(map(_encode_str, col))
        if t is int:
            return list(map(int.__repr__, col))
        if t is type(None):
            return ["null"] * n
        if t is bool:
            return ["true" if v else "false" for v in col]
    if all(t is type(None) or (isinstance(t, type) and issubclass(t, IntEnum)) for t in types):
        table: dict[Any, str] = {None: "null"}
        for t in types:
            if t is not type(None):
                table.update({m: _encode_str(m.name) for m in t})
        return list(map(table.__getitem__, col))
    return list(map(_encode_value, col))


class _Columns:
    """The buffered records of one event class: one tuple of field values per record
    (taken at record time), turned into the audit columns in bulk at flush."""

    __slots__ = ("kind", "names", "get", "rows", "payload_keys", "template")

    def __init__(self, cls: type) -> None:
        self.kind = cls.__name__
        self.names = [f.name for f in dataclasses.fields(cls)]
        self.get = operator.attrgetter(*self.names) if len(self.names) > 1 else (
            lambda ev, _g=operator.attrgetter(self.names[0]): (_g(ev),))
        self.rows: list[tuple[int, tuple]] = []  # (seq, field values): one append per record
        self.payload_keys = [k for k in self.names if k not in _COMMON]
        self.template = "{" + ",".join(
            f"{_encode_str(k)}:%s" for k in self.payload_keys) + "}"

    def arrays(self, session: str) -> list[pa.Array]:
        n = len(self.rows)
        seqs, values = zip(*self.rows, strict=True)
        cols = dict(zip(self.names, zip(*values, strict=True), strict=True))
        zero = (0,) * n
        empty = ("",) * n

        def text(name: str) -> list[str]:
            c = cols.get(name)
            return [str(v or "") for v in c] if c is not None else list(empty)

        ids = [""] * n
        for f in reversed(_ID_FIELDS):  # the first truthy id field wins
            c = cols.get(f)
            if c is not None:
                ids = [str(v) if v else i for v, i in zip(c, ids, strict=True)]
        frags = [_encode_column(k, list(cols[k])) for k in self.payload_keys]
        payload = list(map(self.template.__mod__, zip(*frags, strict=True))) if frags else ["{}"] * n
        return [
            pa.array([session] * n, pa.string()),
            pa.array(seqs, pa.int64()),
            pa.array(list(map(int, cols.get("ts_exch", zero))), pa.int64()),
            pa.array(list(map(int, cols.get("ts_recv", zero))), pa.int64()),
            pa.array([self.kind] * n, pa.string()),
            pa.array(ids, pa.string()),
            pa.array(text("agent"), pa.string()),
            pa.array(text("symbol"), pa.string()),
            pa.array(payload, pa.string()),
        ]


def _columnar(cls: type) -> bool:
    """Events recorded as column tuples: plain dataclasses of scalars (fields that can
    hold a list, dict or array are encoded on arrival, as their content may change)."""
    if not dataclasses.is_dataclass(cls) or cls.to_record is not Event.to_record:
        return False
    return not any(re.search(r"list|dict|tuple|ndarray|Any|Mapping|Sequence", str(f.type))
                   for f in dataclasses.fields(cls))


class AuditLog:
    """Append-only audit log.

    - path: directory for Parquet segments, or None to keep rows in memory only.
    - session: session id written on every row.
    - flush_every: rows buffered before a segment is written.

    ``record`` appends an event's field values to its class's column buffer (no
    encoding per record); ``flush`` builds the Arrow columns of every buffered
    record at once, JSON payloads included, in sequence order.
    """

    def __init__(self, path: str | Path | None, session: str = "session", flush_every: int = 20_000,
                 mirror: Any = None):
        """``mirror(rows)``, if given, also receives every flushed batch (dicts with the audit
        columns), e.g. to put them on a Redis stream for the storage writer."""
        self.mirror = mirror
        # taps(seq, record dict) see every record as it is written (a live session's
        # telemetry); with a tap, records take the per-record path (one dict each)
        self.taps: list[Callable[[int, dict[str, Any]], None]] = []
        self.path = Path(path) if path is not None else None
        self.session = session
        self.flush_every = flush_every
        self.seq = 0
        self._cols: dict[type, _Columns | None] = {}
        self._rows: list[tuple] = []  # records encoded on arrival (dicts, extras, containers)
        self._n = 0
        self._mem: list[pa.Table] = []
        self._synced: list[pa.Table] = []  # built and given to the mirror by sync(), not yet written
        self._n_synced = 0
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
        cls = type(event)
        buf = self._cols.get(cls, False)
        if buf is False:
            buf = self._cols[cls] = _Columns(cls) if _columnar(cls) else None
        if buf is None or extra or self.taps:
            rec = event.to_record()
            if extra:
                rec.update(extra)
            return self.record_dict(rec)
        if self.seq >= self._reserved and self.path is not None:
            self._reserve()
        self.seq = seq = self.seq + 1
        buf.rows.append((seq, buf.get(event)))
        kind = buf.kind
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self._n += 1
        if self._n + self._n_synced >= self.flush_every:
            self.flush()
        return seq

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
            _dumps(redact(payload)),
        )
        self._rows.append(row)
        self._n += 1
        seq = self.seq
        for tap in self.taps:
            tap(seq, rec)
        if self._n + self._n_synced >= self.flush_every:
            self.flush()
        return seq

    def extend(self, events: Iterable[Event]) -> None:
        for ev in events:
            self.record(ev)

    def _table(self) -> pa.Table | None:
        """Everything buffered as one Arrow table in seq order (and the buffers emptied)."""
        if not self._n:
            return None
        parts = []
        for buf in self._cols.values():
            if buf is not None and buf.rows:
                parts.append(pa.Table.from_arrays(buf.arrays(self.session), schema=AUDIT_SCHEMA))
                buf.rows = []
        if self._rows:
            cols = list(zip(*self._rows, strict=True))
            parts.append(pa.Table.from_arrays(
                [pa.array(c, t.type) for c, t in zip(cols, AUDIT_SCHEMA, strict=True)], schema=AUDIT_SCHEMA))
            self._rows = []
        self._n = 0
        table = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        if len(parts) > 1:
            table = table.take(pc.sort_indices(table["seq"]))
        return table

    def sync(self) -> int:
        """Give the buffered rows not yet mirrored to the mirror now (no Parquet write);
        returns how many. Without a mirror there is nothing faster than ``flush``."""
        if self.mirror is None:
            return 0
        table = self._table()
        if table is None:
            return 0
        self.mirror(table.to_pylist())
        self._synced.append(table)
        self._n_synced += table.num_rows
        return table.num_rows

    def flush(self) -> None:
        """Write the buffer as a new segment (atomic rename) or keep it in memory."""
        self.sync()
        table = self._table()  # without a mirror, sync() left the buffers as they were
        parts = self._synced + ([table] if table is not None else [])
        self._synced, self._n_synced = [], 0
        if not parts:
            return
        table = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        if self.path is None:
            self._mem.append(table)
            return
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
            if not self._mem:
                return pd.DataFrame(columns=AUDIT_SCHEMA.names)
            return pa.concat_tables(self._mem).to_pandas()
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
