"""Storage throughput: binary COPY vs executemany, a year of candles into numpy, ClickHouse inserts.

    .venv/bin/python bench/storage_throughput.py [--dsn postgresql://postgres@127.0.0.1:5432/test]

All in one run, against the local PostgreSQL and an in-process ClickHouse (chdb):

1. COPY (binary, built with numpy, via staging + ON CONFLICT) vs psycopg
   ``executemany`` INSERT of the same 200,000 candle rows, as a ratio;
2. loading a year of 1-minute candles for BTC, ETH and SOL (1.58M rows) from
   PostgreSQL into numpy (binary COPY TO + np.frombuffer), rows/s;
3. ClickHouse (chdb) inserts of audit events, rows/s.
"""

from __future__ import annotations

import argparse
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
    args = ap.parse_args(argv)

    from hlquant.core.events import MarketKind
    from hlquant.data.generate import generate
    from hlquant.storage.postgres import PostgresStore

    t = time.perf_counter()
    year = generate(symbols=("BTC", "ETH", "SOL"), days=args.days, seed=3, with_trades=False, with_l2=False)
    print(f"generated {len(year.candles):,} candles in {time.perf_counter() - t:.1f}s")
    rows = year.candles[: args.rows]

    st = PostgresStore(args.dsn, f"bench_{uuid.uuid4().hex[:8]}")
    st.create()
    try:
        sym_map = np.array([i for i, _ in enumerate(st.symbol_ids(year.symbols))], dtype=np.int16)
        t = time.perf_counter()
        n_copy = st.copy_rows(MarketKind.CANDLE, rows, sym_map)
        copy_s = time.perf_counter() - t
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
        print(f"\n== ingestion of {len(rows):,} candle rows ==")
        print(f"binary COPY (staging + ON CONFLICT) {len(rows) / copy_s:12,.0f} rows/s ({n_copy:,} inserted)")
        print(f"executemany INSERT                  {len(rows) / em_s:12,.0f} rows/s")
        print(f"ratio COPY / executemany: {em_s / copy_s:.1f}x")

        st.ingest_market(year)  # the whole year (the first rows are already there)
        t = time.perf_counter()
        back = st.load_market(["BTC", "ETH", "SOL"])
        load_s = time.perf_counter() - t
        assert len(back.candles) == len(year.candles)
        print(f"\n== load a year of 1m candles ({len(back.candles):,} rows, 3 symbols) into numpy ==")
        print(f"{load_s:.2f}s  ({len(back.candles) / load_s:,.0f} rows/s); identical to what was written: "
              f"{bool(np.array_equal(back.candles, year.candles))}")
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
