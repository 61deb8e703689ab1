"""History beyond the API's 5,000 most recent candles: ``hlquant record live|import|fetch``.

``hlquant record live --coins BTC,ETH`` keeps trades, L2 snapshots, BBO, candles
and funding flowing from the WebSocket into PostgreSQL in batches. Every
reconnect is a gap: the recorder backfills what REST can give for the gap
window (candles and funding history) and counts it; trades and book
snapshots missed while disconnected cannot be recovered from the API and are
reported as a gap interval instead of being silently absent. It also builds
candles from its own trades with the archive's builder
(``hlquant.data.candles.CandleBuilder``): bars the candle channel did not
deliver are written from trades when the recorder saw the whole bar, and bars
it did deliver are checked against the trades (volume and count). Bars close
and gaps are bounded in exchange time, taken only from events the exchange
stamps (trades, BBO, candles): the asset context carries no time, so its mark
and funding events are stamped on receipt by this machine's clock, which may
be seconds (or, against a replay, months) away from the exchange's.

``hlquant record import PATH...`` reads Hyperliquid's public archive files
(``hlquant.storage.archive``) and ``hlquant record fetch`` downloads them from
the requester-pays buckets (``hlquant.storage.fetch``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from typing import Any

from hlquant.core.events import BBO, BookSnapshot, Candle, Event, Trade
from hlquant.data.candles import CandleBuilder
from hlquant.data.market import MarketData
from hlquant.storage.postgres import DEFAULT_DSN, PostgresStore

log = logging.getLogger(__name__)

#: events that carry the exchange's own time (``activeAssetCtx`` has none: the feed stamps
#: its MarkPrice and FundingRate with the local clock, which may disagree with the exchange's)
EXCHANGE_TIMED = (Trade, BBO, Candle)


# ----------------------------------------------------------------------------- recorder
class Recorder:
    """Live feed -> batched writes, with gap detection and REST backfill."""

    def __init__(self, store: PostgresStore, ws_url: str, info: Any, coins: list[str],
                 candle_interval: str = "1m", flush_every: int = 2_000, flush_s: float = 2.0,
                 feed_candles: bool = True, close_grace_ms: int = 5_000) -> None:
        """``feed_candles=False`` does not subscribe to the candle channel: every bar is
        built from the recorded trades. ``close_grace_ms``: a bar is closed by other
        events' time only that long after its end (channels are not ordered together)."""
        from hlquant.hyperliquid.info import INTERVAL_MS
        from hlquant.hyperliquid.ws import HyperliquidFeed, market_subscriptions

        self.store, self.info, self.coins = store, info, list(coins)
        self.interval = candle_interval
        self.step = INTERVAL_MS[candle_interval]
        self.feed_candles = feed_candles
        subs = market_subscriptions(coins, candle_interval if feed_candles else None, bbo=True)
        self.feed = HyperliquidFeed(ws_url, subs, info=info)
        self.flush_every, self.flush_s = flush_every, flush_s
        self.buf: list[Event] = []
        self.counters = {"events": 0, "written": 0, "gaps": 0, "backfilled_candles": 0,
                         "candles_from_trades": 0, "candles_checked": 0, "candles_mismatch": 0,
                         "candles_partial": 0, "candles_late_trades": 0}
        self.gaps: list[tuple[int, int]] = []
        self.holes: list[tuple[int, int]] = []
        self.builder = CandleBuilder(self.step, candle_interval)
        self.close_grace_ms = close_grace_ms
        self._conn_start: int | None = None  # exchange time of the first print on this connection
        self._built: dict[tuple[str, int], Candle] = {}  # bars from trades awaiting the feed's bar
        self._fed: dict[tuple[str, int], tuple[int, float]] = {}  # the feed's bars: (n, volume)
        self._settled_at = -1
        self._first_event_ms = 0
        self._last_event_ms = 0
        self._last_flush = time.monotonic()

    # --- candles from the recorder's own trades -----------------------------------
    def _track_candles(self, ev: Event) -> None:
        if self._conn_start is None:
            self._conn_start = ev.ts_exch
        built: list[Candle] = []
        if isinstance(ev, Trade):
            built += self.builder.add(ev.symbol, ev.ts_exch, ev.px, ev.sz)
        elif isinstance(ev, Candle):
            self._fed[(ev.symbol, ev.ts_exch)] = (ev.n, ev.volume)
        built += self.builder.advance(ev.ts_exch - self.close_grace_ms)
        for c in built:
            if c.ts_open <= self._conn_start:  # the recorder may have missed the bar's first trades
                self.counters["candles_partial"] += 1
            elif not self.feed_candles:
                self.buf.append(c)
                self.counters["candles_from_trades"] += 1
            else:
                self._built[(c.symbol, c.ts_exch)] = c
        if self._last_event_ms // self.step != self._settled_at:  # once per bar interval is enough
            self._settled_at = self._last_event_ms // self.step
            self._settle(final=False)

    def _settle(self, final: bool) -> None:
        """Bars built from trades, once the feed had time to deliver its own: compared
        with the feed's (count and volume), or written where the feed gave none."""
        horizon = self._last_event_ms - 2 * self.step
        for key in [k for k, c in self._built.items() if final or c.ts_exch <= horizon]:
            c = self._built.pop(key)
            fed = self._fed.get(key)
            if fed is None:
                self.buf.append(c)
                self.counters["candles_from_trades"] += 1
                continue
            self.counters["candles_checked"] += 1
            n, vol = fed
            if n != c.n or abs(vol - c.volume) > 1e-9 * max(1.0, abs(vol)):
                self.counters["candles_mismatch"] += 1
                log.warning("%s bar closing %d: feed n=%d volume=%g, recorded trades n=%d volume=%g",
                            c.symbol, c.ts_exch, n, vol, c.n, c.volume)
        for key in [k for k in self._fed if k[1] < horizon - 8 * self.step]:
            del self._fed[key]

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
                self.counters["candles_partial"] += self.builder.reset()  # open bars span the gap
                self._conn_start = None
                await asyncio.to_thread(self.flush)
            if getattr(ev, "symbol", None) in self.coins and type(ev).__name__ in (
                    "Trade", "BookSnapshot", "BBO", "Candle", "FundingRate", "MarkPrice"):
                if gap_start is not None and isinstance(ev, EXCHANGE_TIMED):
                    # the first live print after the gap closes it, in exchange time (resync
                    # snapshots are stamped by REST, asset contexts by the local clock)
                    self.gaps.append((gap_start, ev.ts_exch))
                    await asyncio.to_thread(self.backfill, gap_start, ev.ts_exch)
                    gap_start = None
                self.buf.append(ev)
                self.counters["events"] += 1
                if isinstance(ev, (*EXCHANGE_TIMED, BookSnapshot)):
                    self._last_event_ms = max(self._last_event_ms, ev.ts_exch)
                    self._first_event_ms = self._first_event_ms or ev.ts_exch
                if isinstance(ev, EXCHANGE_TIMED):  # not books: resync snapshots carry REST's time
                    self._track_candles(ev)
            if len(self.buf) >= self.flush_every or time.monotonic() - self._last_flush > self.flush_s:
                await asyncio.to_thread(self.flush)
        self._settle(final=True)  # the bar still open at the end is incomplete: not written
        self.flush()
        if self._first_event_ms:
            await asyncio.to_thread(self.fill_holes, self._first_event_ms, self._last_event_ms)
        self.counters["candles_late_trades"] = self.builder.late  # trades of bars already closed
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
    live.add_argument("--no-feed-candles", action="store_true",
                      help="build every bar from the recorded trades instead of the candle channel")
    imp = sub.add_parser("import", help="import archive files/folders from local paths (docs/data.md)")
    imp.add_argument("paths", nargs="+")
    imp.add_argument("--out", default=None, help="also write (merge into) a history folder for data=files")
    imp.add_argument("--no-db", action="store_true", help="do not write to PostgreSQL (needs --out)")
    imp.add_argument("--coins", default=None, help="only these coins, e.g. BTC,ETH (default: all)")
    imp.add_argument("--interval", default="1m", help="candle interval built from trades / mid prices")
    from hlquant.storage.fetch import add_fetch_arguments, run_fetch

    add_fetch_arguments(sub.add_parser("fetch", help="download archive files (requester pays: you pay AWS)"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.cmd in ("fetch", "import"):
        import os

        from hlquant.core.errors import HlquantError

        try:
            return run_fetch(args) if args.cmd == "fetch" else _import(args)
        except HlquantError as e:  # one line for people; the traceback with HLQUANT_DEBUG=1
            if os.environ.get("HLQUANT_DEBUG") == "1":
                raise
            print(f"error: record {args.cmd}: {e}", file=sys.stderr)
            return 2
    with PostgresStore(args.dsn, args.schema) as store:
        store.create()
        from hlquant.hyperliquid.info import InfoClient

        url = args.url.rstrip("/")
        ws_url = "ws" + url[len("http"):] + "/ws"
        rec = Recorder(store, ws_url, InfoClient(url), args.coins.split(","),
                       args.interval, feed_candles=not args.no_feed_candles)

        async def go() -> dict:
            import signal

            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            if args.duration:
                loop.call_later(args.duration, stop.set)
            return await rec.run(stop)

        stats = asyncio.run(go())
        print(json.dumps(stats, default=str))
    if not stats["feed"]["connects"]:  # a run that recorded nothing must not look like a success
        from hlquant.core.errors import ExchangeError
        from hlquant.core.events import ErrorCode

        during = f" in {args.duration:g} s" if args.duration else ""
        raise ExchangeError(f"record live: never connected to {ws_url} ({stats['feed']['reconnects']} attempts"
                            f"{during}; see the warnings above)", code=ErrorCode.UNAVAILABLE)
    return 0


def _import(args: argparse.Namespace) -> int:
    from hlquant.core.errors import ConfigError
    from hlquant.hyperliquid.info import INTERVAL_MS
    from hlquant.storage.archive import import_archive

    if args.interval not in INTERVAL_MS:
        raise ConfigError(f"--interval {args.interval!r}: expected one of {sorted(INTERVAL_MS)}")
    if args.no_db and not args.out:
        raise ConfigError("record import --no-db writes nowhere: add --out DIR")
    coins = [c.strip() for c in args.coins.split(",") if c.strip()] if args.coins else None
    kw = {"out": args.out, "coins": coins, "interval_ms": INTERVAL_MS[args.interval]}
    if args.no_db:
        rep = import_archive(args.paths, **kw)
    else:
        with PostgresStore(args.dsn, args.schema) as store:
            store.create()
            rep = import_archive(args.paths, store=store, **kw)
    print(json.dumps(rep.to_dict(), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
