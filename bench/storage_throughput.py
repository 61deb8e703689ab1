"""Storage throughput: binary COPY vs executemany, a year of candles into numpy, ClickHouse inserts.

    .venv/bin/python bench/storage_throughput.py [--dsn postgresql://postgres@127.0.0.1:5432/test]

All in one run, against the local PostgreSQL and an in-process ClickHouse (chdb):

1. a year of 1-minute candles for BTC, ETH and SOL (1.58M rows) into the
   partitioned table with binary COPY (built with numpy; straight into the
   table when none of the keys can exist yet), rows/s; the same rows again
   (every key present: staging + ON CONFLICT); psycopg ``executemany`` INSERT
   of 200,000 of them into a twin table, and the ratio;
2. loading that year back from PostgreSQL into numpy, rows/s;

each beside the code it replaced, run interleaved in this script (one COPY of
the whole payload through the staging table; one ordered row-by-row COPY TO),
as ratios;
3. ClickHouse (chdb) inserts of audit events, rows/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    from hlquant.core.events import MarketKind
    from hlquant.data.generate import generate
    from hlquant.storage.postgres import (
        COLUMNS,
        PostgresStore,
        binary_copy_payload,
        parse_binary_copy,
    )

    t = time.perf_counter()
    year = generate(symbols=("BTC", "ETH", "SOL"), days=args.days, seed=3, with_trades=False, with_l2=False)
    print(f"generated {len(year.candles):,} candles in {time.perf_counter() - t:.1f}s")
    rows = year.candles[: args.rows]

    st = PostgresStore(args.dsn, f"bench_{uuid.uuid4().hex[:8]}")
    st.create()
    try:
        ids = st.symbol_ids(year.symbols)
        sym_map = np.array([ids[s] for s in year.symbols], dtype=np.int16)
        candles = year.candles
        with st.pool.connection() as c:  # partitions exist before timing (a one-off DDL per month)
            st._ensure_partitions(c, "candles", int(candles["ts_exch"].min()), int(candles["ts_exch"].max()))
        cols = ", ".join(n for n, _ in COLUMNS[MarketKind.CANDLE])

        def previous_copy_rows() -> int:
            """Baseline: what copy_rows did before (one payload, staging table, ON CONFLICT)."""
            with st.pool.connection() as c:
                c.execute(f"CREATE TEMP TABLE IF NOT EXISTS stage_candles (LIKE {st.schema}.candles) "
                          "ON COMMIT DROP")
                with c.cursor() as cur:
                    with cur.copy(f"COPY stage_candles ({cols}) FROM STDIN (FORMAT BINARY)") as cp:
                        cp.write(binary_copy_payload(candles, sym_map))
                    cur.execute(f"INSERT INTO {st.schema}.candles SELECT * FROM stage_candles ON CONFLICT DO NOTHING")
                    return cur.rowcount

        def truncate() -> None:
            with st.pool.connection() as c:
                c.execute(f"TRUNCATE {st.schema}.candles")

        copy_s, prev_s, n_copy = [], [], 0
        for _ in range(args.repeat):  # interleaved: both see the same machine
            truncate()
            t = time.perf_counter()
            assert previous_copy_rows() == len(candles)
            prev_s.append(time.perf_counter() - t)
            truncate()
            t = time.perf_counter()
            n_copy = st.copy_rows(MarketKind.CANDLE, candles, sym_map)
            copy_s.append(time.perf_counter() - t)
        ratio_prev = statistics.median(p / c for p, c in zip(prev_s, copy_s, strict=True))
        copy_s, prev_s = statistics.median(copy_s), statistics.median(prev_s)
        t = time.perf_counter()
        n_again = st.copy_rows(MarketKind.CANDLE, candles, sym_map)  # every key exists: staging path
        again_s = time.perf_counter() - t
        # baseline: executemany into a twin table (same columns and key, same partitioning)
        with st.pool.connection() as c:
            c.execute(f"CREATE TABLE {st.schema}.candles_em (LIKE {st.schema}.candles INCLUDING ALL)")
            tuples = [tuple(x.item() for x in r) for r in rows]
            t = time.perf_counter()
            with c.cursor() as cur:
                cur.executemany(f"INSERT INTO {st.schema}.candles_em VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                                "ON CONFLICT DO NOTHING", tuples)
            c.commit()
            em_s = time.perf_counter() - t
        copy_rate = len(candles) / copy_s
        print("\n== ingestion of one-minute candles into the partitioned table ==")
        print(f"binary COPY, new rows          {copy_rate:12,.0f} rows/s ({n_copy:,} rows, "
              f"median of {args.repeat}; target >= 500,000)")
        print(f"previous copy_rows (staging)   {len(candles) / prev_s:12,.0f} rows/s (median of "
              f"{args.repeat}, interleaved): ratio {ratio_prev:.2f}x")
        print(f"binary COPY, every row present {len(candles) / again_s:12,.0f} rows/s "
              f"(staging + ON CONFLICT, {n_again} inserted)")
        print(f"executemany INSERT             {len(rows) / em_s:12,.0f} rows/s ({len(rows):,} rows)")
        print(f"ratio COPY / executemany: {copy_rate / (len(rows) / em_s):.1f}x")

        def previous_load() -> np.ndarray:
            """Baseline: the loader before (one ordered COPY TO, one protocol message per row)."""
            buf = bytearray()
            with st.pool.connection() as c, c.cursor() as cur, cur.copy(
                    f"COPY (SELECT {cols} FROM {st.schema}.candles ORDER BY ts_exch, sym) TO STDOUT "
                    "(FORMAT BINARY)") as cp:
                for chunk in cp:
                    buf += chunk
            return parse_binary_copy(bytes(buf), MarketKind.CANDLE)

        loads, prev_loads = [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            prev = previous_load()
            prev_loads.append(time.perf_counter() - t)
            t = time.perf_counter()
            back = st.load_market(["BTC", "ETH", "SOL"])
            loads.append(time.perf_counter() - t)
        ratio_load = statistics.median(p / c for p, c in zip(prev_loads, loads, strict=True))
        load_s = statistics.median(loads)
        assert len(back.candles) == len(year.candles) == len(prev)
        print(f"\n== load a year of 1m candles ({len(back.candles):,} rows, 3 symbols) into numpy ==")
        print(f"{load_s:.2f}s  ({len(back.candles) / load_s:,.0f} rows/s, median of {args.repeat}; "
              f"target >= 1,000,000); identical to what was written: "
              f"{bool(np.array_equal(back.candles, year.candles))}")
        print(f"previous loader (row-by-row COPY TO) {statistics.median(prev_loads):.2f}s "
              f"({len(prev) / statistics.median(prev_loads):,.0f} rows/s): ratio {ratio_load:.2f}x")
    finally:
        st.drop()
        st.close()

    try:
        from hlquant.storage.clickhouse import AuditAnalytics
    except ImportError:
        print("\nchdb not installed: skipping ClickHouse")
        return 0
    n = 1_000_000
    rng = np.random.default_rng(0)
    kinds = np.array(["Fill", "OrderRequest", "OrderAck", "RiskDecision", "Intent"])
    frame = pd.DataFrame({
        "session": "bench", "seq": np.arange(n, dtype=np.uint64),
        "ts_exch": 1_767_225_600_000 + np.arange(n, dtype=np.int64) * 10,
        "ts_recv": 1_767_225_600_000 + np.arange(n, dtype=np.int64) * 10 + 3,
        "kind": kinds[rng.integers(0, 5, n)], "agent": np.where(rng.random(n) < 0.5, "a1", "a2"),
        "symbol": "BTC", "id": "x",
        "payload": '{"cloid":"0xab","px":100000.0,"sz":0.01,"fee":0.45,"closed_pnl":1.5,"status":"FILLED",'
                   '"approved":false,"reason":"order rate limit"}'})
    with tempfile.TemporaryDirectory() as d:
        ch = AuditAnalytics(Path(d) / "chdb", database=f"b{uuid.uuid4().hex[:6]}")
        t = time.perf_counter()
        ch.insert_audit(frame)
        ins_s = time.perf_counter() - t
        t = time.perf_counter()
        pnl = ch.pnl_per_agent_hour()
        q_s = time.perf_counter() - t
    print(f"\n== ClickHouse (chdb) audit inserts, {n:,} rows, 3 materialized views ==")
    print(f"{n / ins_s:,.0f} rows/s; PnL-per-agent-hour query {q_s * 1000:.0f} ms ({len(pnl)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
