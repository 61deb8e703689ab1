"""History beyond the API's 5,000 most recent candles: a live recorder and an archive importer.

``hlquant record live --coins BTC,ETH`` keeps trades, L2 snapshots, BBO, candles
and funding flowing from the WebSocket into PostgreSQL in batches. Every
reconnect is a gap: the recorder backfills what REST can give for the gap
window (candles and funding history) and counts it; trades and book
snapshots missed while disconnected cannot be recovered from the API and are
reported as a gap interval instead of being silently absent.

``hlquant record import PATH...`` reads Hyperliquid's public archive files
from local disk (LZ4 frame compressed, or plain): hourly ``l2Book`` snapshot
files (lines ``{"time", "ver_num", "raw": {"channel": "l2Book", "data": ...}}``),
trade files (node trades: ``{"coin", "side", "time", "px", "sz", "tid"?, ...}``)
and fill files (``[user, fill]`` lines, or blocks ``{"events": [[user, fill], ...]}``;
each trade appears once per side and is kept once, by tid/hash, as the taker's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hlquant.core.events import L2_DEPTH, BookSnapshot, Event, Side, Trade
from hlquant.data.market import MarketData
from hlquant.storage.postgres import DEFAULT_DSN, PostgresStore

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- archive
def _open_lines(path: Path) -> Iterator[str]:
    if path.suffix == ".lz4":
        import lz4.frame

        with lz4.frame.open(path, "rt") as f:
            yield from f
    else:
        with open(path) as f:
            yield from f


def _ms(t: Any) -> int:
    """Archive times are ms integers or ISO strings (naive = UTC)."""
    if isinstance(t, (int, float)):
        return int(t)
    ts = pd.Timestamp(str(t))
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value // 1_000_000)


@dataclass
class ImportReport:
    files: int = 0
    lines: int = 0
    events: int = 0
    bad_lines: list[tuple[str, int, str]] = field(default_factory=list)
    duplicates: int = 0


def parse_archive_line(obj: Any, seen: set[str]) -> list[Event]:
    """One decoded archive line -> events (empty for a duplicate side of a fill)."""
    if isinstance(obj, dict) and "raw" in obj:  # market_data/<date>/<hour>/l2Book/<coin>.lz4
        raw = obj["raw"]
        if raw.get("channel") != "l2Book":
            return []
        d = raw["data"]
        bids = [(float(x["px"]), float(x["sz"])) for x in d["levels"][0][:L2_DEPTH]]
        asks = [(float(x["px"]), float(x["sz"])) for x in d["levels"][1][:L2_DEPTH]]
        t = int(d["time"])
        return [BookSnapshot(t, t, d["coin"], bids, asks)]
    if isinstance(obj, dict) and "events" in obj:  # fills by block
        out: list[Event] = []
        for pair in obj["events"]:
            out += parse_archive_line(pair, seen)
        return out
    if isinstance(obj, list) and len(obj) == 2 and isinstance(obj[1], dict):  # [user, fill]
        f = obj[1]
        key = str(f.get("tid") or f.get("hash"))
        if not f.get("crossed", True):
            return []  # the maker's side: the taker's side carries the trade
        if key in seen:
            return []
        seen.add(key)
        t = _ms(f["time"])
        side = Side.BUY if f["side"] == "B" else Side.SELL
        return [Trade(t, t, f["coin"], side, float(f["px"]), float(f["sz"]), int(f.get("tid") or 0))]
    if isinstance(obj, dict) and {"coin", "side", "px", "sz", "time"} <= set(obj):  # node trades
        key = str(obj.get("tid") or obj.get("hash") or (obj["coin"], obj["time"], obj["px"], obj["sz"]))
        if key in seen:
            return []
        seen.add(key)
        t = _ms(obj["time"])
        side = Side.BUY if obj["side"] == "B" else Side.SELL
        return [Trade(t, t, obj["coin"], side, float(obj["px"]), float(obj["sz"]), int(obj.get("tid") or 0))]
    raise ValueError("unrecognized archive line")


def read_archive(paths: Iterable[str | Path], report: ImportReport) -> list[Event]:
    events: list[Event] = []
    seen: set[str] = set()
    for p in paths:
        p = Path(p)
        files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
        for f in files:
            report.files += 1
            for i, line in enumerate(_open_lines(f), 1):
                line = line.strip()
                if not line:
                    continue
                report.lines += 1
                try:
                    evs = parse_archive_line(json.loads(line), seen)
                except (ValueError, KeyError, TypeError, IndexError) as e:
                    report.bad_lines.append((f.name, i, f"{type(e).__name__}: {e}"))
                    continue
                events += evs
    report.events = len(events)
    return events


def import_archive(store: PostgresStore, paths: Iterable[str | Path], progress: bool = True) -> ImportReport:
    rep = ImportReport()
    events = read_archive(paths, rep)
    if events:
        md = MarketData.from_events(events, meta={"source": "hyperliquid-archive"})
        store.ingest_market(md, progress=progress)
    return rep


# ----------------------------------------------------------------------------- recorder
class Recorder:
    """Live feed -> batched writes, with gap detection and REST backfill."""

    def __init__(self, store: PostgresStore, ws_url: str, info: Any, coins: list[str],
                 candle_interval: str = "1m", flush_every: int = 2_000, flush_s: float = 2.0) -> None:
        from hlquant.hyperliquid.ws import HyperliquidFeed, market_subscriptions

        self.store, self.info, self.coins = store, info, list(coins)
        self.interval = candle_interval
        self.feed = HyperliquidFeed(ws_url, market_subscriptions(coins, candle_interval, bbo=True), info=info)
        self.flush_every, self.flush_s = flush_every, flush_s
        self.buf: list[Event] = []
        self.counters = {"events": 0, "written": 0, "gaps": 0, "backfilled_candles": 0}
        self.gaps: list[tuple[int, int]] = []
        self.holes: list[tuple[int, int]] = []
        self._first_event_ms = 0
        self._last_event_ms = 0
        self._last_flush = time.monotonic()

    def flush(self) -> None:
        if not self.buf:
            return
        md = MarketData.from_events(self.buf, symbols=self.coins, meta={"source": "recorder"})
        self.counters["written"] += sum(r.inserted for r in self.store.ingest_market(md))
        self.buf.clear()
        self._last_flush = time.monotonic()

    def backfill(self, t0: int, t1: int) -> int:
        """Candles and funding for [t0, t1] from REST (what the API can give back)."""
        from hlquant.hyperliquid.info import INTERVAL_MS
        from hlquant.storage.ingest import market_from_candles

        candles, funding = [], []
        for c in self.coins:
            candles += self.info.candles(c, self.interval, t0 - INTERVAL_MS[self.interval], t1)
            funding += self.info.funding_history(c, t0, t1)
        md = market_from_candles(candles, funding, self.coins, INTERVAL_MS[self.interval])
        n = sum(r.inserted for r in self.store.ingest_market(md))
        self.counters["backfilled_candles"] += n
        return n

    def fill_holes(self, t0: int, t1: int) -> int:
        """Data-level gap check: missing bars in the stored candles of [t0, t1] are fetched
        from REST (catches what a connection-level check misses, e.g. frames lost on a
        socket that was closing). Returns candles inserted."""
        from hlquant.hyperliquid.info import INTERVAL_MS

        step = INTERVAL_MS[self.interval]
        ids = self.store.symbol_ids(self.coins)
        n = 0
        with self.store.pool.connection() as c:
            rows = {coin: [r[0] for r in c.execute(
                f"SELECT ts_exch FROM {self.store.schema}.candles WHERE sym = %s AND ts_exch BETWEEN %s AND %s "
                "ORDER BY ts_exch", (ids[coin], t0, t1))] for coin in self.coins}
        found = [(a, b) for ts in rows.values() for a, b in zip(ts, ts[1:], strict=False) if b - a > step]
        if found:  # one paged REST pass over the span of all holes (cheaper than one per hole)
            self.holes += found
            n = self.backfill(min(a for a, _ in found), max(b for _, b in found))
        return n

    async def run(self, stop: asyncio.Event) -> dict[str, Any]:
        gaps_seen = 0
        gap_start: int | None = None
        async for ev in self.feed.events(stop):
            if self.feed.counters["gaps"] > gaps_seen:  # reconnected: a hole since the last event
                gaps_seen = self.feed.counters["gaps"]
                gap_start = self._last_event_ms
                self.counters["gaps"] += 1
                await asyncio.to_thread(self.flush)
            if getattr(ev, "symbol", None) in self.coins and type(ev).__name__ in (
                    "Trade", "BookSnapshot", "BBO", "Candle", "FundingRate", "MarkPrice"):
                if gap_start is not None and type(ev).__name__ != "BookSnapshot":
                    # the first live print after the gap closes it, in exchange time (resync
                    # snapshots are stamped by REST and do not count)
                    self.gaps.append((gap_start, ev.ts_exch))
                    await asyncio.to_thread(self.backfill, gap_start, ev.ts_exch)
                    gap_start = None
                self.buf.append(ev)
                self.counters["events"] += 1
                self._last_event_ms = max(self._last_event_ms, ev.ts_exch)
                self._first_event_ms = self._first_event_ms or ev.ts_exch
            if len(self.buf) >= self.flush_every or time.monotonic() - self._last_flush > self.flush_s:
                await asyncio.to_thread(self.flush)
        self.flush()
        if self._first_event_ms:
            await asyncio.to_thread(self.fill_holes, self._first_event_ms, self._last_event_ms)
        return {**self.counters, "gap_intervals": self.gaps, "holes": self.holes, "feed": dict(self.feed.counters)}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="hlquant record", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", default=DEFAULT_DSN)
    ap.add_argument("--schema", default="hlquant")
    sub = ap.add_subparsers(dest="cmd", required=True)
    live = sub.add_parser("live", help="record the live feed (default)")
    live.add_argument("--coins", required=True)
    live.add_argument("--url", default="https://api.hyperliquid.xyz")
    live.add_argument("--interval", default="1m")
    live.add_argument("--duration", type=float, default=0.0, help="seconds (0: until SIGINT)")
    imp = sub.add_parser("import", help="import archive files from local paths")
    imp.add_argument("paths", nargs="+")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with PostgresStore(args.dsn, args.schema) as store:
        store.create()
        if args.cmd == "import":
            rep = import_archive(store, args.paths)
            print(json.dumps({"files": rep.files, "lines": rep.lines, "events": rep.events,
                              "bad_lines": rep.bad_lines[:20], "n_bad": len(rep.bad_lines)}))
            return 0
        from hlquant.hyperliquid.info import InfoClient

        url = args.url.rstrip("/")
        rec = Recorder(store, "ws" + url[len("http"):] + "/ws", InfoClient(url), args.coins.split(","),
                       args.interval)

        async def go() -> dict:
            import signal

            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            if args.duration:
                loop.call_later(args.duration, stop.set)
            return await rec.run(stop)

        print(json.dumps(asyncio.run(go()), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
