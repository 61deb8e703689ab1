"""PostgreSQL store: both physical layouts, idempotent binary COPY, exact round trip, rollups."""

from __future__ import annotations

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
    rollup_sql,
    schema_sql,
)

from .conftest import DSN


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
    assert "time_bucket(3600000::bigint, ts_exch - 1) + 3600000 AS ts_exch" in text
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


def test_binary_payload_round_trip(sample):
    a = sample.candles[:1000]
    buf = binary_copy_payload(a, np.arange(len(sample.symbols), dtype=np.int16))
    back = parse_binary_copy(buf + b"", MarketKind.CANDLE)  # the same framing COPY TO emits
    for n in a.dtype.names:
        np.testing.assert_array_equal(back[n], a[n])


def test_native_layout_round_trip_is_exact_and_idempotent(pg_store, sample):
    assert pg_store.timescale is False  # this machine has no timescaledb: the native path runs
    reports = pg_store.ingest_market(sample)
    assert {r.table: r.inserted for r in reports}["candles"] == len(sample.candles)
    back = pg_store.load_market()
    assert back.fingerprint() == sample.fingerprint()
    again = pg_store.ingest_market(sample)  # re-ingest: nothing new, nothing doubled
    assert sum(r.inserted for r in again) == 0 and sum(r.duplicates for r in again) == len(sample)
    assert pg_store.count("candles") == len(sample.candles)
    with pg_store.pool.connection() as c:
        parts = [r[0] for r in c.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
            "WHERE p.relname = 'candles' AND n.nspname = %s", (pg_store.schema,))]
    assert parts == ["candles_p202601"]
    sub = pg_store.load_market(["ETH"], start="2026-01-05T12:00:00Z", end="2026-01-06T00:00:00Z")
    assert sub.symbols == ["ETH"] and 700 <= len(sub.candles) <= 721
    assert sub.candles["ts_exch"].min() >= pd.Timestamp("2026-01-05T12:00:00Z").value // 10**6


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


def test_timescale_layout_where_the_extension_exists(pg_store):
    """Runs the hypertable/continuous-aggregate path on a server that has TimescaleDB."""
    if not pg_store.detect_timescale():
        pytest.skip("timescaledb extension not available on this PostgreSQL (the native path is tested above)")
    import uuid

    from hlquant.storage.postgres import PostgresStore

    st = PostgresStore(DSN, f"ts_{uuid.uuid4().hex[:8]}", timescale=True)
    try:
        st.create()
        md = load_sample()
        t0 = int(md.span()[0])
        md = md.select(start=t0, end=t0 + 86_400_000)
        st.ingest_market(md)
        assert st.load_market().fingerprint() == md.fingerprint()
        assert len(st.rollup("candles_1h", "BTC")) == 24
    finally:
        st.drop()
        st.close()
