"""PostgreSQL / TimescaleDB store for market history and audit events.

Layout (one schema per store): ``symbols`` (id -> name), ``candles``,
``trades``, ``l2``, ``funding``, ``bbo``, ``mark`` keyed by ``(sym, ts_exch[, tid])``
so re-ingesting never duplicates a row, and ``audit`` keyed by
``(session, seq)``. Times are integer milliseconds (exactly what the
exchange sends; no float/timezone round trip).

Two physical layouts, chosen by detecting whether the extension is usable
(installed in the database, or creatable because the server preloads it):

- *TimescaleDB usable*: hypertables on ``ts_exch`` (integer time, weekly
  chunks, an ``integer_now`` function), a compression policy segmenting by
  symbol, and continuous aggregates ``candles_5m`` / ``candles_1h`` with
  refresh policies.
- *Plain PostgreSQL* (this machine): native range partitioning by month,
  partitions created on demand for the data being written, and rollup tables
  ``candles_5m`` / ``candles_1h`` refreshed incrementally: only the buckets
  touched by an ingest are recomputed (upsert of a GROUP BY over that range).

Bulk ingestion builds the binary COPY stream with numpy (no per-row Python),
in chunks that are sent while the next is built, rows in key order. Rows
whose keys cannot exist yet (nothing stored for their symbols in their time
range) are COPYed straight into the table, a large batch month by month over
two connections at once; otherwise (or when the COPY meets a key after all)
they go into a temporary staging table and ``INSERT ... ON CONFLICT DO
NOTHING`` into the real one: idempotent, and the count inserted is exact.
Loading back fetches each partition (chunk) as one packed binary string
(``string_agg`` of the columns' binary send forms, two connections at once)
read with ``np.frombuffer`` into the columnar arrays the backtest runs on.
"""

from __future__ import annotations

import enum
import json
import logging
import re
import struct
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hlquant.core.errors import ConfigError, DataError
from hlquant.core.events import L2_DEPTH, MARKET_DTYPES, MarketKind
from hlquant.data.market import STREAMS, MarketData, to_ms

log = logging.getLogger(__name__)

#: a dedicated database (created on first use), never the ``postgres`` maintenance one
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/hlquant"
MONTH_MS = 31 * 86_400_000
ROLLUPS = {"candles_5m": 300_000, "candles_1h": 3_600_000}
#: how long a manual aggregate refresh waits for a concurrent one (a policy job) to finish
REFRESH_WAIT_S = 300.0
#: how long ``drop()`` waits for the cancelled policy jobs' workers to exit
JOB_EXIT_WAIT_S = 60.0
_PG_TYPE = {"i1": "smallint", "i2": "smallint", "i4": "integer", "i8": "bigint", "f8": "double precision"}
_BIN_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")

#: columns per stream table, in order; ``sym`` is the symbols.id
COLUMNS: dict[MarketKind, list[tuple[str, str]]] = {}
for _kind, _dt in MARKET_DTYPES.items():
    cols = []
    for name in _dt.names:
        base, shape = _dt.fields[name][0].base, _dt.fields[name][0].shape
        pg = _PG_TYPE[base.str[1:]]
        cols.append((name, pg + "[]" if shape else pg))
    COLUMNS[_kind] = cols
KEYS = {MarketKind.TRADE: ("sym", "ts_exch", "tid")}


def table_of(kind: MarketKind) -> str:
    return STREAMS[kind]


@dataclass
class IngestReport:
    table: str
    rows: int
    inserted: int
    seconds: float

    @property
    def duplicates(self) -> int:
        return self.rows - self.inserted


def _check_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ConfigError(f"invalid SQL identifier {name!r}")
    return name


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def ensure_database(dsn: str) -> None:
    """Connect to ``dsn``; when its database is missing, create it (from the
    ``postgres`` or ``template1`` maintenance database of the same server).
    Raises a one-line ``ConfigError`` naming server and database otherwise."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        psycopg.connect(dsn, connect_timeout=10).close()
        return
    except psycopg.OperationalError as e:
        first_error = e
    params = conninfo_to_dict(dsn)
    db = params.get("dbname")
    where = f"PostgreSQL at {params.get('host', 'localhost')}:{params.get('port', 5432)}"
    if not db or db in ("postgres", "template1"):
        raise ConfigError(f"cannot connect to {where} (database {db!r}): {_first_line(first_error)}") from None
    admin = None
    for maintenance in ("postgres", "template1"):
        try:
            admin = psycopg.connect(make_conninfo(dsn, dbname=maintenance), connect_timeout=10, autocommit=True)
            break
        except psycopg.OperationalError:
            continue
    if admin is None:  # the server itself is unreachable or refuses us: report the first error
        raise ConfigError(f"cannot connect to {where} (database {db!r}): {_first_line(first_error)}") from None
    try:
        with admin:
            if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone():
                raise ConfigError(f"cannot connect to database {db!r} on {where}: {_first_line(first_error)}")
            try:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
                log.info("created database %r on %s", db, where)
            except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                pass  # created concurrently by another process
    except psycopg.Error as e:
        raise ConfigError(f"database {db!r} does not exist on {where} and could not be created: "
                          f"{_first_line(e)}") from None


class TimescaleSupport(enum.Enum):
    """What the server offers; only the first two make the hypertable layout usable."""

    INSTALLED = "installed in this database"
    PRELOADED = "library preloaded, so CREATE EXTENSION works"
    NOT_PRELOADED = "installable but not in shared_preload_libraries"
    ABSENT = "not installed on this server"

    @property
    def usable(self) -> bool:
        return self in (TimescaleSupport.INSTALLED, TimescaleSupport.PRELOADED)


def timescale_support(conn: Any) -> TimescaleSupport:
    """Ask the server. ``pg_available_extensions`` alone only says "installable":
    CREATE EXTENSION also needs the loader preloaded, which defines the
    ``timescaledb.max_background_workers`` setting in every session (readable
    without the superuser-only ``shared_preload_libraries``)."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
        return TimescaleSupport.INSTALLED
    if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone():
        return TimescaleSupport.ABSENT
    if conn.execute("SELECT 1 FROM pg_settings WHERE name = 'timescaledb.max_background_workers'").fetchone():
        return TimescaleSupport.PRELOADED
    return TimescaleSupport.NOT_PRELOADED


# ----------------------------------------------------------------------------- DDL
def schema_sql(schema: str, timescale: bool) -> list[str]:
    """Every statement that creates the store; pure (unit-tested for both layouts)."""
    s = _check_ident(schema)
    out = [f"CREATE SCHEMA IF NOT EXISTS {s}",
           f"CREATE TABLE IF NOT EXISTS {s}.symbols (id smallint PRIMARY KEY, name text UNIQUE NOT NULL)",
           f"CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value jsonb NOT NULL)"]
    for kind, cols in COLUMNS.items():
        t = table_of(kind)
        key = ", ".join(KEYS.get(kind, ("sym", "ts_exch")))
        body = ", ".join(f"{c} {typ} NOT NULL" for c, typ in cols)
        part = "" if timescale else " PARTITION BY RANGE (ts_exch)"
        out.append(f"CREATE TABLE IF NOT EXISTS {s}.{t} ({body}, PRIMARY KEY ({key})){part}")
    out.append(
        f"CREATE TABLE IF NOT EXISTS {s}.fills (account text NOT NULL, tid bigint NOT NULL, "
        "ts_exch bigint NOT NULL, symbol text NOT NULL, side smallint NOT NULL, px double precision NOT NULL, "
        "sz double precision NOT NULL, fee double precision NOT NULL, closed_pnl double precision NOT NULL, "
        "oid bigint NOT NULL, cloid text NOT NULL, source text NOT NULL, PRIMARY KEY (account, tid))")
    audit_part = "" if timescale else " PARTITION BY RANGE (ts_exch)"
    out.append(
        f"CREATE TABLE IF NOT EXISTS {s}.audit (session text NOT NULL, seq bigint NOT NULL, "
        f"ts_exch bigint NOT NULL, ts_recv bigint NOT NULL, kind text NOT NULL, agent text NOT NULL, "
        f"symbol text NOT NULL, id text NOT NULL, payload jsonb NOT NULL, "
        f"PRIMARY KEY (session, seq, ts_exch)){audit_part}")
    if timescale:
        out.append(f"CREATE OR REPLACE FUNCTION {s}.now_ms() RETURNS bigint LANGUAGE SQL STABLE AS "
                   "$$ SELECT (extract(epoch from now()) * 1000)::bigint $$")
        for t in [table_of(k) for k in COLUMNS] + ["audit"]:
            out.append(f"SELECT create_hypertable('{s}.{t}', 'ts_exch', chunk_time_interval => 604800000, "
                       "if_not_exists => TRUE)")
            out.append(f"SELECT set_integer_now_func('{s}.{t}', '{s}.now_ms', replace_if_exists => TRUE)")
        for t in ("candles", "trades", "l2"):
            out.append(f"ALTER TABLE {s}.{t} SET (timescaledb.compress, timescaledb.compress_segmentby = 'sym')")
            out.append(f"SELECT add_compression_policy('{s}.{t}', compress_after => 2592000000::bigint, "
                       "if_not_exists => TRUE)")
        for name, width in ROLLUPS.items():
            # right-closed buckets (k*w, (k+1)*w] labelled by their end; a continuous
            # aggregate must bucket the bare dimension column, so shift with the offset
            bucket = f"time_bucket({width}::bigint, ts_exch, 1::bigint)"
            out.append(
                f"CREATE MATERIALIZED VIEW IF NOT EXISTS {s}.{name} WITH (timescaledb.continuous) AS "
                f"SELECT sym, {bucket} + {width - 1} AS ts_exch, "
                "first(open, ts_exch) AS open, max(high) AS high, min(low) AS low, "
                "last(close, ts_exch) AS close, sum(volume) AS volume, sum(n)::integer AS n "
                f"FROM {s}.candles GROUP BY sym, {bucket} WITH NO DATA")
            out.append(f"SELECT add_continuous_aggregate_policy('{s}.{name}', start_offset => NULL, "
                       f"end_offset => {width}::bigint, schedule_interval => INTERVAL '1 minute', "
                       "if_not_exists => TRUE)")
    else:
        for name in ROLLUPS:
            out.append(
                f"CREATE TABLE IF NOT EXISTS {s}.{name} (sym smallint NOT NULL, ts_exch bigint NOT NULL, "
                "open double precision NOT NULL, high double precision NOT NULL, low double precision NOT NULL, "
                "close double precision NOT NULL, volume double precision NOT NULL, n integer NOT NULL, "
                "PRIMARY KEY (sym, ts_exch))")
    return out


def partition_sql(schema: str, table: str, t0: int, t1: int) -> list[str]:
    """Monthly partitions covering [t0, t1] (ms), for the native layout."""
    s, t = _check_ident(schema), _check_ident(table)
    out = []
    start = pd.Timestamp(t0, unit="ms", tz="UTC").normalize().replace(day=1)
    end = pd.Timestamp(t1, unit="ms", tz="UTC")
    while start <= end:
        nxt = start + pd.offsets.MonthBegin(1)
        a, b = int(start.value // 1_000_000), int(nxt.value // 1_000_000)
        out.append(f"CREATE TABLE IF NOT EXISTS {s}.{t}_p{start:%Y%m} PARTITION OF {s}.{t} "
                   f"FOR VALUES FROM ({a}) TO ({b})")
        start = nxt
    return out


def refresh_window(width_ms: int, t0: int, t1: int) -> tuple[int, int]:
    """``[lo, hi)`` covering exactly the continuous-aggregate buckets that hold
    candles in [t0, t1]. Buckets start at k*w + 1 (offset 1), and TimescaleDB
    refreshes only buckets wholly inside the window, so it ends one past the
    last bucket (a single candle still covers one whole bucket)."""
    lo = (t0 - 1) // width_ms * width_ms + 1
    hi = (t1 - 1) // width_ms * width_ms + width_ms + 1
    return lo, hi


def rollup_sql(schema: str, name: str, width_ms: int, t0: int, t1: int) -> str:
    """Recompute only the buckets of ``name`` touched by candles in [t0, t1]."""
    s = _check_ident(schema)
    lo = (t0 - 1) // width_ms * width_ms
    hi = (t1 - 1) // width_ms * width_ms + width_ms
    return (
        f"INSERT INTO {s}.{_check_ident(name)} (sym, ts_exch, open, high, low, close, volume, n) "
        f"SELECT sym, (ts_exch - 1) / {width_ms} * {width_ms} + {width_ms} AS b, "
        "(array_agg(open ORDER BY ts_exch))[1], max(high), min(low), "
        "(array_agg(close ORDER BY ts_exch DESC))[1], sum(volume), sum(n) "
        f"FROM {s}.candles WHERE ts_exch > {lo} AND ts_exch <= {hi} GROUP BY sym, b "
        "ON CONFLICT (sym, ts_exch) DO UPDATE SET open = EXCLUDED.open, high = EXCLUDED.high, "
        "low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume, n = EXCLUDED.n")


# ----------------------------------------------------------------------------- binary COPY
def _fixed_width(kind: MarketKind) -> bool:
    return all(not t.endswith("[]") for _, t in COLUMNS[kind])


def binary_copy_payload(a: np.ndarray, sym_map: np.ndarray) -> bytes:
    """The whole binary COPY stream for fixed-width rows, built with numpy."""
    names = a.dtype.names
    fields = [("nf", ">i2")]
    for n in names:
        base = a.dtype.fields[n][0].base
        be = ">" + ("i2" if base.str[1:] == "i1" else base.str[1:])
        fields += [(f"l_{n}", ">i4"), (n, be)]
    out = np.empty(len(a), dtype=np.dtype(fields))
    out["nf"] = len(names)
    for n in names:
        v = sym_map[a["sym"]] if n == "sym" else a[n]
        out[f"l_{n}"] = out.dtype.fields[n][0].itemsize
        out[n] = v
    return _BIN_HEADER + out.tobytes() + b"\xff\xff"


def _write_binary(cp: Any, a: np.ndarray, parts: list[np.ndarray], sym_map: np.ndarray) -> None:
    """One binary COPY stream of rows ``parts`` of ``a``, built and sent a chunk at a
    time (the server parses one chunk while the next is built)."""
    cp.write(_BIN_HEADER)
    for idx in parts:
        for i in range(0, len(idx), _COPY_CHUNK):
            payload = binary_copy_payload(a[idx[i:i + _COPY_CHUNK]], sym_map)
            cp.write(memoryview(payload)[len(_BIN_HEADER):-2])
    cp.write(b"\xff\xff")


def _is_sorted(a: np.ndarray, keys: tuple[str, ...]) -> bool:
    """Whether ``a`` is in ascending order of ``keys`` (the first is the primary), in O(n)."""
    if len(a) < 2:
        return True
    ok = np.diff(a[keys[-1]]) >= 0
    for k in reversed(keys[:-1]):
        d = np.diff(a[k])
        ok = (d > 0) | ((d == 0) & ok)
    return bool(ok.all())


def parse_binary_copy(buf: bytes, kind: MarketKind) -> np.ndarray:
    """``COPY ... TO STDOUT (FORMAT BINARY)`` of a fixed-width table -> structured array."""
    dt = MARKET_DTYPES[kind]
    fields = [("nf", ">i2")]
    for n in dt.names:
        base = dt.fields[n][0].base
        fields += [(f"l_{n}", ">i4"), (n, ">" + ("i2" if base.str[1:] == "i1" else base.str[1:]))]
    row = np.dtype(fields)
    ext = struct.unpack(">i", buf[15:19])[0]
    body = memoryview(buf)[19 + ext: len(buf) - 2]
    raw = np.frombuffer(body, dtype=row)
    out = np.empty(len(raw), dtype=dt)
    for n in dt.names:
        out[n] = raw[n]
    return out


_SEND = {"bigint": "int8send", "smallint": "int2send", "integer": "int4send",
         "double precision": "float8send"}
_COPY_CHUNK = 50_000  # rows per COPY message built and sent at a time
_PARALLEL_MIN = 100_000  # rows from which a new batch is COPYed over two connections


def packed_dtype(kind: MarketKind) -> np.dtype:
    """A row of ``kind`` as the server sends its columns' binary forms back to back."""
    dt = MARKET_DTYPES[kind]
    return np.dtype([(n, ">" + ("i2" if dt.fields[n][0].base.str[1:] == "i1" else dt.fields[n][0].base.str[1:]))
                     for n in dt.names])


def packed_select(schema: str, kind: MarketKind, where: str) -> str:
    """One row, one bytea: every selected row of ``kind`` as ``packed_dtype`` records."""
    rec = " || ".join(f"{_SEND[typ]}({n})" for n, typ in COLUMNS[kind])
    return f"SELECT string_agg({rec}, ''::bytea) FROM {schema}.{table_of(kind)} WHERE {where}"


def month_slices(ts: np.ndarray) -> list[np.ndarray]:
    """Row indices of ``ts`` (ms) per UTC calendar month, in month order."""
    month = ts.astype("datetime64[ms]").astype("datetime64[M]")
    order = np.argsort(month, kind="stable")
    cuts = np.flatnonzero(np.diff(month[order].astype(np.int64))) + 1
    return np.split(order, cuts)


# ----------------------------------------------------------------------------- store
class PostgresStore:
    """Market history and audit events in one schema (see module docstring)."""

    def __init__(self, dsn: str = DEFAULT_DSN, schema: str = "hlquant", pool_size: int = 4,
                 timescale: bool | None = None) -> None:
        from psycopg_pool import ConnectionPool

        self.dsn = dsn
        self.schema = _check_ident(schema)
        ensure_database(dsn)
        self.pool = ConnectionPool(dsn, min_size=1, max_size=pool_size, open=True,
                                   kwargs={"autocommit": False})
        self.timescale = self.detect_timescale() if timescale is None else timescale
        self._partitions: set[str] = set()

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def detect_timescale(self) -> bool:
        """True when TimescaleDB is usable here (installed in this database, or
        creatable because the server preloads it); otherwise logs why not."""
        with self.pool.connection() as c:
            support = timescale_support(c)
        if not support.usable:
            log.info("timescaledb %s: schema %s uses native partitions", support.value, self.schema)
        return support.usable

    def create(self) -> None:
        with self.pool.connection() as c:
            if self.timescale:
                c.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            for stmt in schema_sql(self.schema, self.timescale):
                c.execute(stmt)

    def drop(self) -> None:
        """Drop the schema. Its policy jobs (aggregate refresh, compression) are
        deleted first and their running workers awaited: dropping under a running
        job deadlocks or fails with "tuple concurrently deleted"."""
        with self.pool.connection() as c:
            if c.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
                jobs = c.execute("SELECT job_id, application_name FROM timescaledb_information.jobs "
                                 "WHERE hypertable_schema = %s", (self.schema,)).fetchall()
                for job_id, _ in jobs:
                    c.execute("SELECT delete_job(%s)", (job_id,))  # also cancels a running worker
                c.commit()
                names = [name for _, name in jobs]
                deadline = time.monotonic() + JOB_EXIT_WAIT_S
                while names and time.monotonic() < deadline:
                    running = c.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = ANY(%s)",
                                        (names,)).fetchone()[0]
                    c.commit()
                    if not running:
                        break
                    time.sleep(0.05)
            c.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        self._partitions.clear()

    def _ensure_partitions(self, c: Any, table: str, t0: int, t1: int) -> None:
        if self.timescale:
            return
        for stmt in partition_sql(self.schema, table, t0, t1):
            if stmt not in self._partitions:
                c.execute(stmt)
                self._partitions.add(stmt)

    # --- symbols -------------------------------------------------------------
    def symbol_ids(self, names: Iterable[str]) -> dict[str, int]:
        """Stable small ids per symbol, assigned in first-seen order."""
        names = list(names)
        with self.pool.connection() as c:
            c.execute(f"LOCK TABLE {self.schema}.symbols IN EXCLUSIVE MODE")
            have = dict(c.execute(f"SELECT name, id FROM {self.schema}.symbols").fetchall())
            nxt = max(have.values(), default=-1) + 1
            for n in names:
                if n not in have:
                    c.execute(f"INSERT INTO {self.schema}.symbols (id, name) VALUES (%s, %s)", (nxt, n))
                    have[n] = nxt
                    nxt += 1
        return have

    def symbols(self) -> list[str]:
        with self.pool.connection() as c:
            return [r[0] for r in c.execute(f"SELECT name FROM {self.schema}.symbols ORDER BY id")]

    # --- ingestion -------------------------------------------------------------
    def ingest_market(self, md: MarketData, progress: bool = False) -> list[IngestReport]:
        """COPY every stream of ``md``; idempotent (re-ingest inserts nothing)."""
        import time

        from tqdm import tqdm

        ids = self.symbol_ids(md.symbols)
        sym_map = np.array([ids[s] for s in md.symbols], dtype=np.int16)
        reports = []
        total = len(md)
        bar = tqdm(total=total, unit="row", unit_scale=True, desc="ingest", disable=not progress)
        with self.pool.connection() as c:
            c.execute(f"INSERT INTO {self.schema}.meta (key, value) VALUES ('interval_ms', %s) ON CONFLICT (key) "
                      "DO UPDATE SET value = EXCLUDED.value", (json.dumps(md.interval_ms),))
        for kind, a in md.arrays().items():
            if not len(a):
                continue
            t = time.perf_counter()
            inserted = self.copy_rows(kind, a, sym_map)
            reports.append(IngestReport(table_of(kind), len(a), inserted, time.perf_counter() - t))
            bar.update(len(a))
            if kind == MarketKind.CANDLE:
                self.refresh_rollups(int(a["ts_exch"].min()), int(a["ts_exch"].max()))
        bar.close()
        return reports

    def copy_rows(self, kind: MarketKind, a: np.ndarray, sym_map: np.ndarray) -> int:
        """Insert what is new of ``a``; returns rows inserted (see the module docstring)."""
        if not len(a):
            return 0
        t = table_of(kind)
        t0, t1 = int(a["ts_exch"].min()), int(a["ts_exch"].max())
        with self.pool.connection() as c:
            self._ensure_partitions(c, t, t0, t1)
            if not _fixed_width(kind):
                return self._copy_staged(c, kind, a, sym_map)
            syms = np.unique(sym_map[np.unique(a["sym"])]).tolist()
            taken = c.execute(f"SELECT 1 FROM {self.schema}.{t} WHERE sym = ANY(%s) AND ts_exch BETWEEN %s AND %s "
                              "LIMIT 1", (syms, t0, t1)).fetchone()
            if taken is not None:
                return self._copy_staged(c, kind, a, sym_map)
        # no key of `a` is stored: COPY straight in, in key order (sym, ts: the index's)
        a = a[np.lexsort([a[k] for k in reversed(KEYS.get(kind, ("sym", "ts_exch")))])]
        parts = month_slices(a["ts_exch"]) if len(a) >= _PARALLEL_MIN else [np.arange(len(a))]
        groups = [parts[i::2] for i in range(min(2, len(parts), max(1, self.pool.max_size - 1)))]
        inserted = 0
        failed: list[np.ndarray] = []
        with ThreadPoolExecutor(len(groups)) as ex:
            for group, ok in zip(groups, ex.map(lambda g: self._copy_direct(kind, a, g, sym_map), groups),
                                 strict=True):
                if ok:
                    inserted += sum(len(p) for p in group)
                else:
                    failed += group
        if failed:  # a key appeared meanwhile (a concurrent writer, or twice in `a`)
            with self.pool.connection() as c:
                inserted += self._copy_staged(c, kind, a[np.concatenate(failed)], sym_map)
        return inserted

    def _copy_direct(self, kind: MarketKind, a: np.ndarray, parts: list[np.ndarray], sym_map: np.ndarray) -> bool:
        """COPY rows ``parts`` of ``a`` into the table in one transaction; False (rolled
        back) if a key already exists."""
        from psycopg.errors import UniqueViolation

        cols = ", ".join(c for c, _ in COLUMNS[kind])
        try:
            with self.pool.connection() as c, c.cursor() as cur, \
                    cur.copy(f"COPY {self.schema}.{table_of(kind)} ({cols}) FROM STDIN (FORMAT BINARY)") as cp:
                _write_binary(cp, a, parts, sym_map)
            return True
        except UniqueViolation:
            return False

    def _copy_staged(self, c: Any, kind: MarketKind, a: np.ndarray, sym_map: np.ndarray) -> int:
        """COPY into a staging table, then insert what is new (ON CONFLICT DO NOTHING)."""
        s, t = self.schema, table_of(kind)
        cols = [n for n, _ in COLUMNS[kind]]
        stage = f"stage_{t}"
        c.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {s}.{t}) ON COMMIT DROP")
        with c.cursor() as cur:
            with cur.copy(f"COPY {stage} ({', '.join(cols)}) FROM STDIN (FORMAT BINARY)") as cp:
                if _fixed_width(kind):
                    _write_binary(cp, a, [np.arange(len(a))], sym_map)
                else:
                    cp.set_types([typ for _, typ in COLUMNS[kind]])
                    for row in a:
                        cp.write_row([int(sym_map[row["sym"]]) if n == "sym" else
                                      (row[n].tolist() if np.ndim(row[n]) else row[n].item()) for n in cols])
            cur.execute(f"INSERT INTO {s}.{t} SELECT * FROM {stage} ON CONFLICT DO NOTHING")
            return int(cur.rowcount)

    def refresh_rollups(self, t0: int, t1: int) -> None:
        """Rollups for candles in [t0, t1]: continuous aggregates refresh themselves
        (we nudge them); native rollup tables recompute just those buckets."""
        with self.pool.connection() as c:
            for name, width in ROLLUPS.items():
                if self.timescale:
                    c.commit()
                    c.autocommit = True
                    try:
                        self._refresh_aggregate(c, name, *refresh_window(width, t0, t1))
                    finally:
                        c.autocommit = False
                else:
                    c.execute(rollup_sql(self.schema, name, width, t0, t1))

    def _refresh_aggregate(self, c: Any, name: str, lo: int, hi: int) -> None:
        """Refresh [lo, hi) of a continuous aggregate. TimescaleDB refuses a refresh
        overlapping one in progress (its refresh policy job, another ingest) with
        LockNotAvailable instead of waiting, so poll until it is done."""
        import psycopg

        deadline = time.monotonic() + REFRESH_WAIT_S
        pause = 0.05
        while True:
            try:
                c.execute(f"CALL refresh_continuous_aggregate('{self.schema}.{name}', {lo}, {hi})")
                return
            except psycopg.errors.LockNotAvailable:
                if time.monotonic() + pause > deadline:
                    raise
                log.debug("%s.%s: a concurrent refresh is running; retrying", self.schema, name)
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    def ingest_audit(self, frame: pd.DataFrame) -> int:
        """Audit rows (``AuditLog.frame()`` / ``read_audit``) -> ``audit``; idempotent."""
        if frame.empty:
            return 0
        s = self.schema
        with self.pool.connection() as c:
            self._ensure_partitions(c, "audit", int(frame["ts_exch"].min()), int(frame["ts_exch"].max()))
            c.execute(f"CREATE TEMP TABLE IF NOT EXISTS stage_audit (LIKE {s}.audit) ON COMMIT DROP")
            with c.cursor() as cur:
                with cur.copy("COPY stage_audit (session, seq, ts_exch, ts_recv, kind, agent, symbol, id, payload) "
                              "FROM STDIN") as cp:
                    for r in frame.itertuples(index=False):
                        cp.write_row((r.session, int(r.seq), int(r.ts_exch), int(r.ts_recv), r.kind, r.agent,
                                      r.symbol, r.id, r.payload))
                cur.execute(f"INSERT INTO {s}.audit SELECT * FROM stage_audit ON CONFLICT DO NOTHING")
                return int(cur.rowcount)

    def insert_fills(self, account: str, fills: Iterable[Any], source: str) -> int:
        """Account fills (core ``Fill`` events), unique by trade id: re-runs insert nothing."""
        rows = [(account.lower(), int(f.tid), int(f.ts_exch), f.symbol, int(f.side), float(f.px), float(f.sz),
                 float(f.fee), float(f.closed_pnl), int(f.oid), f.cloid or "", source) for f in fills]
        if not rows:
            return 0
        with self.pool.connection() as c, c.cursor() as cur:
            c.execute(f"CREATE TEMP TABLE IF NOT EXISTS stage_fills (LIKE {self.schema}.fills) ON COMMIT DROP")
            with cur.copy("COPY stage_fills FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)
            cur.execute(f"INSERT INTO {self.schema}.fills SELECT * FROM stage_fills ON CONFLICT DO NOTHING")
            return int(cur.rowcount)

    # --- loading ---------------------------------------------------------------
    def _where(self, ids: Mapping[str, int], symbols: list[str], start: int | None, end: int | None) -> str:
        conds = [f"sym IN ({', '.join(str(ids[s]) for s in symbols)})"]
        if start is not None:
            conds.append(f"ts_exch >= {int(start)}")
        if end is not None:
            conds.append(f"ts_exch <= {int(end)}")
        return " AND ".join(conds)

    def load_market(self, symbols: list[str] | None = None, start: Any = None, end: Any = None) -> MarketData:
        """The columnar MarketData a backtest runs on, read with binary COPY."""
        all_syms = self.symbols()
        symbols = list(symbols) if symbols else all_syms
        missing = [x for x in symbols if x not in all_syms]
        if missing:
            raise ConfigError(f"symbols {missing} are not in {self.schema} (have {all_syms})")
        ids = {n: i for i, n in enumerate(all_syms)}
        with self.pool.connection() as c:
            ids = dict(c.execute(f"SELECT name, id FROM {self.schema}.symbols").fetchall())
            row = c.execute(f"SELECT value FROM {self.schema}.meta WHERE key = 'interval_ms'").fetchone()
        interval = int(row[0]) if row else 60_000
        local = {ids[s]: i for i, s in enumerate(symbols)}
        lut = np.full(max(ids.values()) + 1, -1, dtype=np.int16)
        for gid, li in local.items():
            lut[gid] = li
        where = self._where(ids, symbols, to_ms(start), to_ms(end))
        arrays: dict[str, np.ndarray] = {}
        for kind, cols in COLUMNS.items():
            t = table_of(kind)
            order = KEYS.get(kind, ("sym", "ts_exch"))[1:] + ("sym",)
            if _fixed_width(kind):
                a = self._load_packed(kind, where)
                if not _is_sorted(a, order):  # keys are unique: this is ORDER BY ts_exch, sym
                    a = a[np.lexsort([a[k] for k in reversed(order)])]
            else:
                names = ", ".join(n for n, _ in cols)
                with self.pool.connection() as c:
                    rows = c.execute(f"SELECT {names} FROM {self.schema}.{t} WHERE {where} "
                                     f"ORDER BY {', '.join(order)}").fetchall()
                a = np.empty(len(rows), dtype=MARKET_DTYPES[kind])
                for i, r in enumerate(rows):
                    a[i] = tuple(np.asarray(v, dtype=np.float64) if isinstance(v, list) else v for v in r)
            if len(a):
                a["sym"] = lut[a["sym"]]
            arrays[t] = a
        return MarketData(**arrays, symbols=symbols, interval_ms=interval,
                          meta={"source": f"postgres:{self.schema}"})

    def _time_slices(self, table: str) -> list[tuple[int, int]]:
        """[start, end) of each partition (TimescaleDB: chunk) of ``table``, in time order
        (one slice for everything if a partition has no bounds, e.g. a DEFAULT one)."""
        with self.pool.connection() as c:
            if self.timescale:
                rows = c.execute("SELECT range_start_integer, range_end_integer FROM "
                                 "timescaledb_information.chunks WHERE hypertable_schema = %s AND "
                                 "hypertable_name = %s", (self.schema, table)).fetchall()
            else:
                exprs = c.execute("SELECT pg_get_expr(p.relpartbound, p.oid) FROM pg_inherits i "
                                  "JOIN pg_class p ON p.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
                                  (f"{self.schema}.{table}",)).fetchall()
                rows = [re.findall(r"-?\d+", e)[:2] for (e,) in exprs]
        if any(len(r) != 2 or None in r for r in rows):
            return [(-(2**63), 2**63 - 1)]
        return sorted((int(a), int(b)) for a, b in rows)

    def _load_packed(self, kind: MarketKind, where: str) -> np.ndarray:
        """The rows of ``kind`` matching ``where``, one partition per query (two at a time),
        each sent as one packed binary string: no per-row work in the protocol on either
        side. A partition too large for one string (1 GB) is read row by row instead."""
        from psycopg import errors

        dt = MARKET_DTYPES[kind]

        def fetch(bounds: tuple[int, int]) -> np.ndarray:
            cond = f"{where} AND ts_exch >= {bounds[0]} AND ts_exch < {bounds[1]}"
            try:
                with self.pool.connection() as c, c.cursor(binary=True) as cur:
                    blob = cur.execute(packed_select(self.schema, kind, cond)).fetchone()[0] or b""
            except (errors.ProgramLimitExceeded, errors.OutOfMemory, errors.InternalError_):
                names = ", ".join(n for n, _ in COLUMNS[kind])
                buf = bytearray()
                with self.pool.connection() as c, c.cursor() as cur, cur.copy(
                        f"COPY (SELECT {names} FROM {self.schema}.{table_of(kind)} WHERE {cond}) "
                        "TO STDOUT (FORMAT BINARY)") as cp:
                    for chunk in cp:
                        buf += chunk
                return parse_binary_copy(buf, kind) if len(buf) > 21 else np.empty(0, dt)
            raw = np.frombuffer(blob, dtype=packed_dtype(kind))
            out = np.empty(len(raw), dtype=dt)
            for n in dt.names:
                out[n] = raw[n]
            return out

        slices = self._time_slices(table_of(kind))
        workers = min(2, len(slices), max(1, self.pool.max_size - 1))
        if workers > 1:
            with ThreadPoolExecutor(workers) as ex:
                parts = list(ex.map(fetch, slices))
        else:
            parts = [fetch(b) for b in slices]
        return np.concatenate(parts) if parts else np.empty(0, dt)

    def rollup(self, name: str, symbol: str) -> pd.DataFrame:
        if name not in ROLLUPS:
            raise ConfigError(f"unknown rollup {name!r}; have {sorted(ROLLUPS)}")
        with self.pool.connection() as c:
            sid = c.execute(f"SELECT id FROM {self.schema}.symbols WHERE name = %s", (symbol,)).fetchone()
            if sid is None:
                raise ConfigError(f"unknown symbol {symbol!r}")
            rows = c.execute(f"SELECT ts_exch, open, high, low, close, volume, n FROM {self.schema}.{name} "
                             "WHERE sym = %s ORDER BY ts_exch", (sid[0],)).fetchall()
        return pd.DataFrame(rows, columns=["ts_exch", "open", "high", "low", "close", "volume", "n"])

    def count(self, table: str) -> int:
        with self.pool.connection() as c:
            return int(c.execute(f"SELECT count(*) FROM {self.schema}.{_check_ident(table)}").fetchone()[0])


def load_market_from_config(data: Mapping[str, Any]) -> MarketData:
    """``data=postgres|timescale``: read the configured schema (dsn/schema/symbols/start/end).
    A schema without hlquant's tables, or without data, is a one-line ``DataError``."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    dsn = data.get("dsn") or DEFAULT_DSN
    schema = data.get("schema") or "hlquant"
    p = conninfo_to_dict(dsn)
    where = f"database {p.get('dbname')!r} on PostgreSQL at {p.get('host', 'localhost')}:{p.get('port', 5432)}"
    fill = f"fill it with `hlquant ingest --schema {schema} ...` or pick another data.schema"
    try:
        with PostgresStore(dsn, schema) as st:
            if not st.symbols():
                raise DataError(f"data.schema={schema!r}: no market data in {where}; {fill}")
            return st.load_market(data.get("symbols") or None, data.get("start"), data.get("end"))
    except psycopg.errors.UndefinedTable as e:
        raise DataError(f"data.schema={schema!r}: {_first_line(e)} in {where}; {fill}") from None


# ----------------------------------------------------------------------------- asset contexts (signals)
# A separate table for the per-minute asset contexts of the archive importer
# (hlquant.data.signals); kept apart from the store class on purpose.
def asset_ctxs_sql(schema: str) -> str:
    from hlquant.data.signals import ASSET_CTX_FIELDS

    cols = ", ".join(f"{c} double precision NOT NULL" for c in ASSET_CTX_FIELDS)
    return (f"CREATE TABLE IF NOT EXISTS {_check_ident(schema)}.asset_ctxs (sym smallint NOT NULL, "
            f"ts_exch bigint NOT NULL, ts_src bigint NOT NULL, {cols}, PRIMARY KEY (sym, ts_exch))")


def ingest_asset_ctxs(store: PostgresStore, frame: pd.DataFrame) -> int:
    """Rows in the ``hlquant.data.signals`` layout -> ``<schema>.asset_ctxs``; idempotent
    (a (symbol, minute) already stored is kept). Returns rows inserted; NaN stays NaN."""
    from hlquant.data.signals import ASSET_CTX_FIELDS

    if frame.empty:
        return 0
    s = store.schema
    ids = store.symbol_ids(sorted(set(frame["symbol"])))
    cols = ["sym", "ts_exch", "ts_src", *ASSET_CTX_FIELDS]
    with store.pool.connection() as c, c.cursor() as cur:
        c.execute(asset_ctxs_sql(s))
        c.execute(f"CREATE TEMP TABLE IF NOT EXISTS stage_asset_ctxs (LIKE {s}.asset_ctxs) ON COMMIT DROP")
        with cur.copy(f"COPY stage_asset_ctxs ({', '.join(cols)}) FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(["smallint", "bigint", "bigint"] + ["double precision"] * len(ASSET_CTX_FIELDS))
            vals = frame[["ts_exch", "ts_src", *ASSET_CTX_FIELDS]].to_numpy(dtype=object)
            for sym, row in zip(frame["symbol"], vals, strict=True):
                cp.write_row([ids[sym], int(row[0]), int(row[1]), *(float(v) for v in row[2:])])
        cur.execute(f"INSERT INTO {s}.asset_ctxs SELECT * FROM stage_asset_ctxs ON CONFLICT DO NOTHING")
        return int(cur.rowcount)


def load_asset_ctxs_pg(store: PostgresStore, symbols: list[str] | None = None, start: Any = None,
                       end: Any = None) -> pd.DataFrame:
    """``<schema>.asset_ctxs`` back as the ``hlquant.data.signals`` frame (``start <= ts < end``)."""
    from hlquant.data.signals import ASSET_CTX_FIELDS, empty_frame

    s = store.schema
    with store.pool.connection() as c:
        if c.execute("SELECT to_regclass(%s)", (f"{s}.asset_ctxs",)).fetchone()[0] is None:
            return empty_frame()
        names = dict(c.execute(f"SELECT id, name FROM {s}.symbols").fetchall())
        conds, args = [], []
        if symbols:
            ids = [i for i, n in names.items() if n in set(symbols)]
            conds.append("sym = ANY(%s)")
            args.append(ids)
        if start is not None:
            conds.append("ts_exch >= %s")
            args.append(to_ms(start))
        if end is not None:
            conds.append("ts_exch < %s")
            args.append(to_ms(end))
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        rows = c.execute(f"SELECT ts_exch, ts_src, sym, {', '.join(ASSET_CTX_FIELDS)} FROM {s}.asset_ctxs "
                         f"{where} ORDER BY ts_exch, sym", args).fetchall()
    f = pd.DataFrame(rows, columns=["ts_exch", "ts_src", "symbol", *ASSET_CTX_FIELDS])
    f["symbol"] = f["symbol"].map(names)
    return f.astype({"ts_exch": "int64", "ts_src": "int64"}) if len(f) else empty_frame()


__all__ = ["PostgresStore", "schema_sql", "partition_sql", "rollup_sql", "refresh_window", "ensure_database",
           "TimescaleSupport", "timescale_support", "load_market_from_config",
           "binary_copy_payload", "parse_binary_copy", "IngestReport", "COLUMNS", "L2_DEPTH"]
