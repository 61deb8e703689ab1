"""PostgreSQL store: both physical layouts, idempotent binary COPY, exact round trip, rollups."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

from hlquant.backtest.run import run_backtest
from hlquant.config.compose import load_config
from hlquant.core.events import MarketKind
from hlquant.data.loaders import load_sample
from hlquant.storage.postgres import (
    binary_copy_payload,
    parse_binary_copy,
    partition_sql,
    refresh_window,
    rollup_sql,
    schema_sql,
)

from .conftest import DSN, server_has_timescaledb


@pytest.fixture(scope="module")
def sample():
    md = load_sample()
    t0 = int(md.span()[0])
    return md.select(start=t0, end=t0 + 2 * 86_400_000)


def test_timescale_statements():
    sql = schema_sql("hq", timescale=True)
    text = "\n".join(sql)
    assert "SELECT create_hypertable('hq.candles', 'ts_exch', chunk_time_interval => 604800000" in text
    assert "set_integer_now_func('hq.trades', 'hq.now_ms'" in text
    assert "ALTER TABLE hq.l2 SET (timescaledb.compress, timescaledb.compress_segmentby = 'sym')" in text
    assert "add_compression_policy('hq.candles'" in text
    assert "CREATE MATERIALIZED VIEW IF NOT EXISTS hq.candles_5m WITH (timescaledb.continuous)" in text
    # the form TimescaleDB accepts: bucket the bare dimension column, shifted by an offset
    assert "time_bucket(3600000::bigint, ts_exch, 1::bigint) + 3599999 AS ts_exch" in text
    assert "GROUP BY sym, time_bucket(300000::bigint, ts_exch, 1::bigint) WITH NO DATA" in text
    assert "ts_exch - 1" not in text
    assert "add_continuous_aggregate_policy('hq.candles_1h'" in text
    assert "PARTITION BY" not in text


def test_native_statements():
    text = "\n".join(schema_sql("hq", timescale=False))
    assert "CREATE TABLE IF NOT EXISTS hq.candles (" in text and "PARTITION BY RANGE (ts_exch)" in text
    assert "PRIMARY KEY (sym, ts_exch, tid)" in text  # trades
    assert "timescaledb" not in text and "CREATE TABLE IF NOT EXISTS hq.candles_1h" in text
    parts = partition_sql("hq", "candles", 1767225600000, 1772323200000)  # 2026-01-01 .. 2026-03-01
    assert [p.split()[5] for p in parts] == ["hq.candles_p202601", "hq.candles_p202602", "hq.candles_p202603"]
    assert "FOR VALUES FROM (1767225600000) TO (1769904000000)" in parts[0]
    r = rollup_sql("hq", "candles_5m", 300_000, 1_000_060_000, 1_000_300_000)
    assert "ts_exch > 999900000 AND ts_exch <= 1000500000" in r and "ON CONFLICT (sym, ts_exch) DO UPDATE" in r
    with pytest.raises(ValueError):
        schema_sql("bad; drop", timescale=False)


def test_refresh_window_covers_whole_buckets_through_the_last():
    w = 300_000
    # buckets are (k*w, (k+1)*w], i.e. start at k*w + 1; the window ends one past the last
    assert refresh_window(w, 600_000, 600_000) == (300_001, 600_001)  # one candle: one bucket
    assert refresh_window(w, 600_001, 600_001) == (600_001, 900_001)
    assert refresh_window(w, 60_000, 1_200_000) == (1, 1_200_001)
    for t0, t1 in [(1, 1), (299_999, 300_001), (1_767_225_660_000, 1_767_398_400_000)]:
        lo, hi = refresh_window(w, t0, t1)
        assert (lo - 1) % w == 0 and (hi - 1) % w == 0 and hi - lo >= w
        assert lo <= t0 and t1 < hi and lo > t0 - w and hi <= t1 + w


def test_binary_payload_round_trip(sample):
    a = sample.candles[:1000]
    buf = binary_copy_payload(a, np.arange(len(sample.symbols), dtype=np.int16))
    back = parse_binary_copy(buf + b"", MarketKind.CANDLE)  # the same framing COPY TO emits
    for n in a.dtype.names:
        np.testing.assert_array_equal(back[n], a[n])


@pytest.mark.postgres
def test_layout_round_trip_is_exact_and_idempotent(pg_store, sample):
    reports = pg_store.ingest_market(sample)
    assert {r.table: r.inserted for r in reports}["candles"] == len(sample.candles)
    back = pg_store.load_market()
    assert back.fingerprint() == sample.fingerprint()
    again = pg_store.ingest_market(sample)  # re-ingest: nothing new, nothing doubled
    assert sum(r.inserted for r in again) == 0 and sum(r.duplicates for r in again) == len(sample)
    assert pg_store.count("candles") == len(sample.candles)
    if server_has_timescaledb():
        assert_timescale_layout(pg_store, sample)
    else:
        assert_native_layout(pg_store)
    sub = pg_store.load_market(["ETH"], start="2026-01-05T12:00:00Z", end="2026-01-06T00:00:00Z")
    assert sub.symbols == ["ETH"] and 700 <= len(sub.candles) <= 721
    assert sub.candles["ts_exch"].min() >= pd.Timestamp("2026-01-05T12:00:00Z").value // 10**6


def assert_native_layout(st):
    assert st.timescale is False
    with st.pool.connection() as c:
        parts = [r[0] for r in c.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
            "WHERE p.relname = 'candles' AND n.nspname = %s", (st.schema,))]
        rollups = [r[0] for r in c.execute(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND relname IN ('candles_5m', 'candles_1h') AND relkind = 'r' ORDER BY 1",
            (st.schema,))]
    assert parts == ["candles_p202601"]
    assert rollups == ["candles_1h", "candles_5m"]


def assert_timescale_layout(st, sample):
    """Hypertables, compression policies and continuous aggregates, as the server reports them."""
    assert st.timescale is True
    s = st.schema
    with st.pool.connection() as c:
        dims = {r[0]: (r[1], r[2]) for r in c.execute(
            "SELECT hypertable_name, column_name, column_type::text FROM timescaledb_information.dimensions "
            "WHERE hypertable_schema = %s", (s,))}
        compressed = {r[0] for r in c.execute(
            "SELECT hypertable_name FROM timescaledb_information.hypertables "
            "WHERE hypertable_schema = %s AND compression_enabled", (s,))}
        jobs = sorted(c.execute(
            "SELECT proc_name, hypertable_name FROM timescaledb_information.jobs "
            "WHERE hypertable_schema = %s", (s,)).fetchall())
        caggs = sorted(c.execute(
            "SELECT view_name, hypertable_name FROM timescaledb_information.continuous_aggregates "
            "WHERE view_schema = %s", (s,)).fetchall())
        # each aggregate equals a plain GROUP BY over the raw candles: exact OHLC, counts and
        # buckets; volume up to float summation order
        for name, w in (("candles_5m", 300_000), ("candles_1h", 3_600_000)):
            diff = c.execute(
                f"WITH ref AS (SELECT sym, (ts_exch - 1) / {w} * {w} + {w} AS ts_exch, "
                "(array_agg(open ORDER BY ts_exch))[1] AS open, max(high) AS high, min(low) AS low, "
                "(array_agg(close ORDER BY ts_exch DESC))[1] AS close, sum(volume) AS volume, sum(n) AS n "
                f"FROM {s}.candles GROUP BY 1, 2) "
                f"SELECT sym, ts_exch FROM ref FULL JOIN {s}.{name} a USING (sym, ts_exch) "
                "WHERE (a.open, a.high, a.low, a.close, a.n) IS DISTINCT FROM "
                "(ref.open, ref.high, ref.low, ref.close, ref.n) "
                "OR NOT abs(a.volume - ref.volume) <= 1e-9 * abs(ref.volume)").fetchall()
            assert diff == [], (name, len(diff), diff[:3])
    tables = ["audit", "bbo", "candles", "funding", "l2", "mark", "trades"]
    assert sorted(dims) == tables and set(dims.values()) == {("ts_exch", "bigint")}
    assert compressed == {"candles", "trades", "l2"}
    assert jobs == sorted([("policy_compression", t) for t in ("candles", "trades", "l2")]
                          + [("policy_refresh_continuous_aggregate", v) for v in ("candles_5m", "candles_1h")])
    assert caggs == [("candles_1h", "candles"), ("candles_5m", "candles")]
    c = sample.candles
    buckets = {(int(sym), (int(t) - 1) // 300_000) for sym, t in zip(c["sym"], c["ts_exch"], strict=True)}
    assert st.count("candles_5m") == len(buckets)  # every bucket, the last one included
    # re-ingest into compressed chunks: still idempotent and exact
    with st.pool.connection() as conn:
        for t in ("candles", "trades", "l2"):
            conn.execute(f"SELECT compress_chunk(ch, if_not_compressed => true) FROM show_chunks('{s}.{t}') ch")
        n = conn.execute("SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_schema = %s "
                         "AND hypertable_name = 'candles' AND NOT is_compressed", (s,)).fetchone()[0]
    assert n == 0
    assert sum(r.inserted for r in st.ingest_market(sample)) == 0
    assert st.load_market().fingerprint() == sample.fingerprint()


def test_rollups_match_pandas_and_refresh_incrementally(pg_store, sample):
    pg_store.ingest_market(sample)
    r5 = pg_store.rollup("candles_5m", "BTC")
    btc = pd.DataFrame(sample.candles[sample.candles["sym"] == 0])
    btc["b"] = (btc["ts_exch"] - 1) // 300_000 * 300_000 + 300_000
    ref = btc.groupby("b").agg(open=("open", "first"), high=("high", "max"), low=("low", "min"),
                               close=("close", "last"), volume=("volume", "sum"))
    assert len(r5) == len(ref)
    np.testing.assert_allclose(r5[["open", "high", "low", "close", "volume"]].to_numpy(),
                               ref[["open", "high", "low", "close", "volume"]].to_numpy())
    # a corrected candle re-ingested into a new store run changes only its bucket
    h1 = pg_store.rollup("candles_1h", "BTC")
    assert len(h1) == 48
    with pg_store.pool.connection() as c:
        c.execute(f"UPDATE {pg_store.schema}.candles SET high = 10000000 WHERE sym = 0 AND ts_exch = %s",
                  (int(btc["ts_exch"].iloc[100]),))
    t = int(btc["ts_exch"].iloc[100])
    pg_store.refresh_rollups(t, t)
    h1b = pg_store.rollup("candles_1h", "BTC")
    changed = (h1b["high"] != h1["high"]).to_numpy()
    assert changed.sum() == 1 and h1b["high"].max() == 10**7


def test_backtest_from_postgres_equals_parquet(pg_store, sample):
    pg_store.ingest_market(sample)
    cfg_pg = load_config(["strategy=ma_cross", "progress=false", "data=postgres", f"data.dsn={DSN}",
                          f"data.schema={pg_store.schema}"])
    from_pg = run_backtest(cfg_pg)
    from_parquet = run_backtest(load_config(["strategy=ma_cross", "progress=false"]), market=sample)
    pd.testing.assert_series_equal(from_pg.metrics, from_parquet.metrics)
    assert from_pg.stats["events"] == len(sample)


def test_audit_events_land_once(pg_store, sample):
    res = run_backtest(load_config(["strategy=ma_cross", "progress=false"]), market=sample)
    frame = res.audit.frame()
    assert pg_store.ingest_audit(frame) == len(frame)
    assert pg_store.ingest_audit(frame) == 0
    assert pg_store.count("audit") == len(frame)


@pytest.mark.postgres
def test_timescale_detection_matches_what_the_server_can_create(pg_store, caplog):
    """Usable means CREATE EXTENSION really works here; a server where the package is
    installed but not preloaded falls back to native partitions, saying why."""
    import logging

    import psycopg

    c = psycopg.connect(DSN)
    try:
        c.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        creatable = True
    except psycopg.Error:  # not preloaded: a FATAL error that also ends the session
        creatable = False
    finally:
        c.close()  # without commit: nothing is left behind
    with caplog.at_level(logging.INFO, logger="hlquant.storage.postgres"):
        detected = pg_store.detect_timescale()
    assert detected is creatable is pg_store.timescale is server_has_timescaledb()
    if not detected:
        assert any("native partitions" in r.getMessage() for r in caplog.records)


@pytest.mark.postgres
def test_store_creates_its_missing_database(pg_store):
    """The configured database (``hlquant`` by default) is created on first use; when it
    cannot be, the error is one line naming the database and the server."""
    import uuid

    import psycopg
    from psycopg.conninfo import make_conninfo

    from hlquant.core.errors import ConfigError
    from hlquant.storage.postgres import DEFAULT_DSN, PostgresStore, ensure_database

    assert DEFAULT_DSN.endswith("/hlquant")  # a dedicated database, never the maintenance one
    name = f"hlq_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(make_conninfo(DSN, dbname="postgres"), autocommit=True)
    role = f"hlq_ro_{uuid.uuid4().hex[:8]}"
    try:
        with PostgresStore(make_conninfo(DSN, dbname=name), "hq") as st:
            st.create()
            assert st.symbol_ids(["BTC"]) == {"BTC": 0}
        assert admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        ensure_database(make_conninfo(DSN, dbname=name))  # already there: nothing to do
        admin.execute(f"CREATE ROLE {role} LOGIN NOCREATEDB")
        with pytest.raises(ConfigError) as e:
            ensure_database(make_conninfo(DSN, dbname=f"{name}_x", user=role))
        msg = str(e.value)
        assert "\n" not in msg and f"{name}_x" in msg and "could not be created" in msg and "permission" in msg
        with pytest.raises(ConfigError) as e:
            ensure_database(make_conninfo(DSN, host="127.0.0.1", port="1", dbname=name))
        assert "\n" not in str(e.value) and "127.0.0.1:1" in str(e.value)
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.close()


# ----------------------------------------------------------------------------- TimescaleDB policy jobs
def _require_timescale_store(st) -> None:
    if not server_has_timescaledb():
        pytest.skip("the server has no TimescaleDB (set HLQUANT_TEST_PG_DSN to one to run this)")
    assert st.timescale is True


def _poll(what: str, cond, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _sql(query: str, *params):
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as c:
        cur = c.execute(query, params or None)
        return cur.fetchall() if cur.description else []


def _policy_job(st, view: str) -> tuple[int, str]:
    return _sql("SELECT job_id, application_name FROM timescaledb_information.jobs "
                "WHERE hypertable_schema = %s AND hypertable_name = %s", st.schema, view)[0]


def _block_refreshes_of(st, view: str, candle_ts: int):
    """Give ``view``'s refresh policy work (an invalidated candle) and hold a SHARE lock on
    its materialization table: a refresh then registers its window and waits for the lock
    until the returned connection rolls back."""
    import psycopg

    mat = _sql("SELECT format('%%I.%%I', materialization_hypertable_schema, materialization_hypertable_name) "
               "FROM timescaledb_information.continuous_aggregates WHERE view_schema = %s AND view_name = %s",
               st.schema, view)[0][0]
    _sql(f"UPDATE {st.schema}.candles SET volume = volume WHERE ts_exch = %s", candle_ts)
    holder = psycopg.connect(DSN)
    holder.execute(f"LOCK TABLE {mat} IN SHARE MODE")
    return holder


def _registered_window(st, view: str) -> tuple[int, int] | None:
    """The window of a refresh of ``view`` in progress (TimescaleDB's concurrent-refresh registry)."""
    rows = _sql("SELECT start_range, end_range FROM _timescaledb_catalog.continuous_aggs_jobs_refresh_ranges r "
                "JOIN _timescaledb_catalog.continuous_agg a ON a.mat_hypertable_id = r.materialization_id "
                "WHERE a.user_view_schema = %s AND a.user_view_name = %s", st.schema, view)
    return rows[0] if rows else None


def _assert_rollups_exact(st, sample) -> None:
    c = sample.candles
    for name, w in (("candles_5m", 300_000), ("candles_1h", 3_600_000)):
        buckets = {(int(s), (int(t) - 1) // w) for s, t in zip(c["sym"], c["ts_exch"], strict=True)}
        assert st.count(name) == len(buckets), name
    r5 = st.rollup("candles_5m", "BTC")
    btc = pd.DataFrame(c[c["sym"] == 0])
    ref = btc.groupby((btc["ts_exch"] - 1) // 300_000).agg(open=("open", "first"), high=("high", "max"),
                                                           low=("low", "min"), close=("close", "last"))
    np.testing.assert_array_equal(r5[["open", "high", "low", "close"]].to_numpy(), ref.to_numpy())


def _pause_refresh_policies(st) -> None:
    """Stop the scheduler running the refresh policies and let a current run end."""
    for view in ("candles_5m", "candles_1h"):
        job, app = _policy_job(st, view)
        _sql("SELECT alter_job(%s, scheduled => false)", job)
        _poll(f"the scheduled run of {view} to end",
              lambda app=app: not _sql("SELECT 1 FROM pg_stat_activity WHERE application_name = %s", app))


@pytest.mark.postgres
def test_ingest_refreshes_every_bucket_itself(pg_store, sample):
    """With the policies paused, the ingest's own refresh must leave no bucket out: the
    window used to stop one short of the last bucket (3 missing per rollup here), and
    refreshing after a single candle failed with "refresh window too small"."""
    st = pg_store
    _require_timescale_store(st)
    _pause_refresh_policies(st)
    st.ingest_market(sample)
    _assert_rollups_exact(st, sample)
    t = int(sample.candles["ts_exch"].max())
    _sql(f"UPDATE {st.schema}.candles SET high = 10000000 WHERE ts_exch = %s AND sym = 0", t)
    st.refresh_rollups(t, t)  # one candle: exactly its bucket
    assert st.rollup("candles_5m", "BTC")["high"].iloc[-1] == 10**7
    assert st.rollup("candles_1h", "BTC")["high"].iloc[-1] == 10**7


@pytest.mark.postgres
@pytest.mark.slow
def test_manual_refresh_waits_for_the_refresh_policy(pg_store, sample, caplog):
    """A refresh policy run overlapping an ingest's refresh used to fail the ingest with
    LockNotAvailable ("due to a concurrent refresh"). Here the policy run is held mid-refresh
    and the manual refresh asks for a bucket inside the window it registered."""
    import logging

    import psycopg

    st = pg_store
    _require_timescale_store(st)
    st.ingest_market(sample)
    view = "candles_5m"  # the first one refresh_rollups refreshes
    job, _ = _policy_job(st, view)
    _pause_refresh_policies(st)  # we run the policy ourselves, once
    ts = sample.candles["ts_exch"]
    holder = _block_refreshes_of(st, view, int(ts[len(ts) // 2]))
    errors: list[BaseException] = []

    def run(fn):
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            errors.append(e)

    def policy_run():
        with psycopg.connect(DSN, autocommit=True) as c:
            c.execute("CALL run_job(%s)", (job,))

    policy = threading.Thread(target=run, args=(policy_run,))
    manual = None
    try:
        with caplog.at_level(logging.DEBUG, logger="hlquant.storage.postgres"):
            policy.start()
            lo, hi = _poll("the policy's refresh to start", lambda: _registered_window(st, view))
            t = min(max(lo, int(ts.min())), hi - 1)  # a candle time inside the policy's window
            manual = threading.Thread(target=run, args=(lambda: st.refresh_rollups(t, t),))
            manual.start()
            _poll("the manual refresh to meet the policy's",
                  lambda: errors or any("concurrent refresh" in r.getMessage() for r in caplog.records))
            assert not errors, errors
    finally:
        holder.rollback()
        holder.close()
        policy.join(120)
        if manual is not None:
            manual.join(120)
    assert not errors, errors
    _assert_rollups_exact(st, sample)


@pytest.mark.postgres
@pytest.mark.slow
def test_drop_while_a_policy_job_runs(pg_store, sample):
    """Dropping the schema under a running refresh job used to deadlock or fail ("tuple
    concurrently deleted"). The scheduler's worker is held mid-refresh, so drop() always
    meets it."""
    st = pg_store
    _require_timescale_store(st)
    st.ingest_market(sample)
    view = "candles_1h"
    job, app = _policy_job(st, view)
    ts = sample.candles["ts_exch"]
    holder = _block_refreshes_of(st, view, int(ts[len(ts) // 2]))
    errors: list[BaseException] = []

    def drop():
        try:
            st.drop()
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            errors.append(e)

    dropper = threading.Thread(target=drop)
    try:
        _sql("SELECT alter_job(%s, next_start => now())", job)
        _poll("the scheduler's worker to wait inside the refresh",
              lambda: _sql("SELECT 1 FROM pg_stat_activity WHERE application_name = %s "
                           "AND wait_event_type = 'Lock'", app))
        dropper.start()
        _poll("drop() to reach DROP SCHEMA",
              lambda: errors or not dropper.is_alive() or _sql(
                  "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'DROP SCHEMA%%'"))
        # the job was deleted and its worker gone before the schema drop began
        worker_at_drop = _sql("SELECT 1 FROM pg_stat_activity WHERE application_name = %s", app)
    finally:
        holder.rollback()
        holder.close()
        if dropper.ident is not None:  # started
            dropper.join(120)
    assert not errors, errors
    assert not worker_at_drop
    assert not _sql("SELECT 1 FROM pg_namespace WHERE nspname = %s", st.schema)
    assert not _sql("SELECT 1 FROM timescaledb_information.jobs WHERE hypertable_schema = %s", st.schema)
    assert not _sql("SELECT 1 FROM pg_stat_activity WHERE application_name = %s", app)


# --- throughput paths (item 6 of issue 16): the same rows, less work per row ----------------
def _candles(days: int, symbols=("BTC", "ETH", "SOL")):
    from hlquant.data.generate import generate

    return generate(symbols=symbols, days=days, seed=4, with_trades=False, with_l2=False, start="2026-01-20")


@pytest.mark.postgres
def test_new_rows_are_copied_straight_in_over_two_connections(pg_store, monkeypatch):
    """A batch none of whose keys exist skips the staging table; a large one spanning
    months is written month by month over two connections at once, in key order."""
    import threading

    from hlquant.storage import postgres

    md = _candles(45)  # > 100k rows over two months
    ids = pg_store.symbol_ids(md.symbols)
    sym_map = np.array([ids[s] for s in md.symbols], dtype=np.int16)

    def no_staging(*a, **k):
        raise AssertionError("new rows went through the staging table")

    threads = set()
    direct = postgres.PostgresStore._copy_direct

    def spy(self, *a, **k):
        threads.add(threading.get_ident())
        return direct(self, *a, **k)

    monkeypatch.setattr(postgres.PostgresStore, "_copy_staged", no_staging)
    monkeypatch.setattr(postgres.PostgresStore, "_copy_direct", spy)
    assert pg_store.copy_rows(MarketKind.CANDLE, md.candles, sym_map) == len(md.candles)
    assert len(threads) == 2
    monkeypatch.undo()
    assert pg_store.load_market().candles.tobytes() == md.candles.tobytes()
    # the same rows again, and rows overlapping them: only the new ones are inserted
    assert pg_store.copy_rows(MarketKind.CANDLE, md.candles, sym_map) == 0
    more = _candles(50)
    assert pg_store.copy_rows(MarketKind.CANDLE, more.candles, sym_map) == len(more.candles) - len(md.candles)
    assert pg_store.count("candles") == len(more.candles)


@pytest.mark.postgres
def test_a_key_twice_in_a_new_batch_falls_back_to_the_exact_path(pg_store):
    md = _candles(2)
    ids = pg_store.symbol_ids(md.symbols)
    sym_map = np.array([ids[s] for s in md.symbols], dtype=np.int16)
    twice = np.concatenate([md.candles, md.candles[:10]])
    assert pg_store.copy_rows(MarketKind.CANDLE, twice, sym_map) == len(md.candles)
    assert pg_store.count("candles") == len(md.candles)


@pytest.mark.postgres
def test_loading_does_no_per_row_protocol_work(pg_store, monkeypatch):
    """History comes back one packed string per partition (chunk), not one message per
    row, and equals what was written."""
    import psycopg

    md = _candles(40)
    pg_store.ingest_market(md)
    reads = {"n": 0}
    real = psycopg.Copy.read

    def counting(self):
        reads["n"] += 1
        return real(self)

    monkeypatch.setattr(psycopg.Copy, "read", counting)
    back = pg_store.load_market()
    assert back.fingerprint() == md.fingerprint()
    assert reads["n"] < 100, f"{reads['n']} protocol reads for {len(md.candles)} rows"
    sub = pg_store.load_market(["SOL", "BTC"], start="2026-02-01", end="2026-02-10T00:00:00Z")
    # load_market's end is inclusive, MarketData.select's exclusive
    want = md.select(symbols=["SOL", "BTC"], start="2026-02-01", end="2026-02-10T00:00:00.001Z")
    assert sub.symbols == want.symbols, (sub.symbols, want.symbols)
    assert len(sub.candles) == len(want.candles)
    assert sub.candles.tobytes() == want.candles.tobytes()
