"""``hlquant ingest``: history into PostgreSQL, never duplicated, never silently dropped.

Sources:

- ``files``: CSV/Parquet in the documented schema (docs/data.md). Bad rows
  are rejected (default: stop at the first, naming file and row) or, with
  ``--on-error skip``, skipped and listed in the report.
- ``hyperliquid``: the REST info API (or the fake exchange): candles paged
  past the 5,000-per-request cap, funding history, and an account's fills
  (``userFillsByTime``), all within the client's rate budget.
- ``graphql``: an indexer (Envio / Goldsky style subgraph) serving account
  fills with cursor pagination (``first`` / ``after`` / ``pageInfo``).

Every write is idempotent (primary keys + ``ON CONFLICT DO NOTHING``), so a
re-run or a resumed run inserts only what is new; progress bars show rows
and rate.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import requests
from tqdm import tqdm

from hlquant.core.events import MARKET_DTYPES, Fill, MarketKind, Side
from hlquant.data.loaders import load_files
from hlquant.data.market import MarketData, to_ms
from hlquant.storage.postgres import DEFAULT_DSN, PostgresStore


@dataclass
class IngestResult:
    source: str
    rows: int = 0
    inserted: int = 0
    bad_rows: list[tuple[str, int, str]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        rate = self.rows / self.seconds if self.seconds else 0.0
        s = (f"{self.source}: {self.rows:,} rows read, {self.inserted:,} inserted, "
             f"{self.rows - self.inserted:,} already present, {len(self.bad_rows)} bad rows skipped "
             f"({rate:,.0f} rows/s)")
        for f, row, why in self.bad_rows[:20]:
            s += f"\n  {f} row {row}: {why}"
        if len(self.bad_rows) > 20:
            s += f"\n  ... and {len(self.bad_rows) - 20} more"
        return s


def ingest_files(store: PostgresStore, path: str, on_error: str = "raise", progress: bool = True,
                 irregular: str = "reject") -> IngestResult:
    t = time.perf_counter()
    bad: list[tuple[str, int, str]] = []
    md = load_files(path, on_error=on_error, bad_rows=bad, irregular=irregular)  # type: ignore[arg-type]
    reps = store.ingest_market(md, progress=progress)
    return IngestResult(f"files:{path}", len(md), sum(r.inserted for r in reps), bad, time.perf_counter() - t)


def market_from_candles(candles: list[Any], funding: list[Any], symbols: list[str], interval_ms: int) -> MarketData:
    idx = {s: i for i, s in enumerate(symbols)}
    c = np.empty(len(candles), dtype=MARKET_DTYPES[MarketKind.CANDLE])
    for i, k in enumerate(candles):
        c[i] = (k.ts_exch, k.ts_recv, idx[k.symbol], k.open, k.high, k.low, k.close, k.volume, k.n)
    f = np.empty(len(funding), dtype=MARKET_DTYPES[MarketKind.FUNDING])
    for i, x in enumerate(funding):
        f[i] = (x.ts_exch, x.ts_recv, idx[x.symbol], x.rate, x.premium, x.oracle_px)
    return MarketData(candles=c, funding=f, symbols=symbols, interval_ms=interval_ms,
                      meta={"source": "hyperliquid"})


def ingest_hyperliquid(store: PostgresStore, url: str, coins: list[str], start: Any, end: Any,
                       interval: str = "1m", user: str | None = None, progress: bool = True) -> IngestResult:
    from hlquant.hyperliquid.info import INTERVAL_MS, InfoClient

    t = time.perf_counter()
    info = InfoClient(url)
    t0, t1 = to_ms(start), to_ms(end)
    candles, funding = [], []
    for coin in tqdm(coins, desc="hyperliquid", unit="coin", disable=not progress):
        candles += info.candles(coin, interval, t0, t1)
        funding += info.funding_history(coin, t0, t1)
    md = market_from_candles(candles, funding, list(coins), INTERVAL_MS[interval])
    reps = store.ingest_market(md, progress=progress)
    rows, inserted = len(md), sum(r.inserted for r in reps)
    if user:
        fills = info.user_fills_by_time(user, t0, t1)
        rows += len(fills)
        inserted += store.insert_fills(user, fills, "hyperliquid")
    return IngestResult(f"hyperliquid:{url}", rows, inserted, [], time.perf_counter() - t)


FILLS_QUERY = """query Fills($account: String!, $first: Int!, $after: String) {
  fills(account: $account, first: $first, after: $after) {
    edges { cursor node { tid time coin side px sz fee closedPnl oid cloid } }
    pageInfo { hasNextPage endCursor }
  }
}"""


def graphql_fills(endpoint: str, account: str, page_size: int = 500, timeout: float = 10.0,
                  on_error: str = "raise", bad_rows: list | None = None) -> list[Fill]:
    """All fills of ``account`` from a GraphQL indexer, following the cursor."""
    out: list[Fill] = []
    after = None
    page = 0
    while True:
        r = requests.post(endpoint, json={"query": FILLS_QUERY, "variables": {
            "account": account, "first": page_size, "after": after}}, timeout=timeout)
        r.raise_for_status()
        body = r.json()
        if body.get("errors"):
            raise RuntimeError(f"graphql error: {body['errors']}")
        conn = body["data"]["fills"]
        for i, e in enumerate(conn["edges"]):
            n = e["node"]
            try:
                side = {"B": Side.BUY, "A": Side.SELL}[n["side"]]
                out.append(Fill(int(n["time"]), int(n["time"]), n["coin"], n.get("cloid") or "", int(n["oid"]),
                                side, float(n["px"]), float(n["sz"]), float(n["fee"]), "taker", int(n["tid"]),
                                "", float(n.get("closedPnl") or 0.0)))
            except (KeyError, ValueError, TypeError) as ex:
                where = f"page {page} edge {i} (cursor {e.get('cursor')})"
                if on_error != "skip":
                    raise ValueError(f"graphql fill at {where}: {ex!r}") from None
                if bad_rows is not None:
                    bad_rows.append(("graphql", page * page_size + i + 1, f"{where}: {ex!r}"))
        page += 1
        if not conn["pageInfo"]["hasNextPage"]:
            return out
        after = conn["pageInfo"]["endCursor"]


def ingest_graphql(store: PostgresStore, endpoint: str, account: str, page_size: int = 500,
                   on_error: str = "raise") -> IngestResult:
    t = time.perf_counter()
    bad: list = []
    fills = graphql_fills(endpoint, account, page_size, on_error=on_error, bad_rows=bad)
    inserted = store.insert_fills(account, fills, "graphql")
    return IngestResult(f"graphql:{endpoint}", len(fills) + len(bad), inserted, bad, time.perf_counter() - t)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="hlquant ingest", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", default=DEFAULT_DSN)
    ap.add_argument("--schema", default="hlquant")
    sub = ap.add_subparsers(dest="source", required=True)
    f = sub.add_parser("files")
    f.add_argument("path")
    f.add_argument("--on-error", choices=["raise", "skip"], default="raise")
    f.add_argument("--irregular", choices=["reject", "accept"], default="reject",
                   help="candles off their interval's grid: reject (default) or keep")
    h = sub.add_parser("hyperliquid")
    h.add_argument("--url", default="https://api.hyperliquid.xyz")
    h.add_argument("--coins", required=True, help="comma separated, e.g. BTC,ETH")
    h.add_argument("--start", required=True)
    h.add_argument("--end", required=True)
    h.add_argument("--interval", default="1m")
    h.add_argument("--user", default=None, help="account whose fills to ingest (the master address)")
    g = sub.add_parser("graphql")
    g.add_argument("endpoint")
    g.add_argument("--account", required=True)
    g.add_argument("--page-size", type=int, default=500)
    g.add_argument("--on-error", choices=["raise", "skip"], default="raise")
    args = ap.parse_args(argv)
    with PostgresStore(args.dsn, args.schema) as store:
        store.create()
        if args.source == "files":
            res = ingest_files(store, args.path, args.on_error, irregular=args.irregular)
        elif args.source == "hyperliquid":
            res = ingest_hyperliquid(store, args.url, args.coins.split(","), args.start, args.end, args.interval,
                                     args.user)
        else:
            res = ingest_graphql(store, args.endpoint, args.account, args.page_size, args.on_error)
    print(res.summary())
    print(json.dumps({"rows": res.rows, "inserted": res.inserted, "bad_rows": len(res.bad_rows)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
