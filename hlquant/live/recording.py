"""The market events a paper or live session received, recorded as it runs.

``MarketRecorder`` keeps every market event the session applies and writes it,
every ``flush_every`` events or ``flush_s`` seconds, as a numbered segment under
``<session>/market/`` (``seg-000001/``: the ``MarketData`` Parquet files plus
``arrivals.parquet``). A segment is written to a temporary folder and renamed,
so a crash loses at most the unflushed buffer and never leaves half a segment.
Segments are written by one background thread, in order: converting and
compressing 5,000 events takes about 0.1 s, which the trading loop must not wait for.

``arrivals.parquet`` keeps, per event in the order the session applied it: its
kind, symbol, exchange and receive time, the wall time it was applied at and the
audit sequence number just before it. Every audit record with a larger sequence
number than an arrival's (and not larger than the next one's) happened while
that event, or the housekeeping after it, was being applied: this is how
``hlquant parity`` knows which market event a live decision was taken on and
what the market looked like when an order filled.

``load_recording(run_dir)`` reads it all back: ``MarketData`` (by exchange time,
what a backtest runs on) and the arrivals table.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hlquant.core.errors import DataError
from hlquant.core.events import BBO, BookSnapshot, Candle, Event, FundingRate, MarkPrice, Trade
from hlquant.data.market import STREAMS, MarketData

log = logging.getLogger(__name__)

MARKET_TYPES = (Trade, BookSnapshot, BBO, Candle, FundingRate, MarkPrice)
ARRIVAL_COLUMNS = ["kind", "symbol", "ts_exch", "ts_recv", "t_apply", "audit_seq"]
MARKET_DIR = "market"


class MarketRecorder:
    """Appends the market events a session applies to ``<out_dir>/market/`` (see module doc)."""

    def __init__(self, out_dir: str | Path, symbols: list[str], flush_every: int = 5_000,
                 flush_s: float = 5.0) -> None:
        self.dir = Path(out_dir) / MARKET_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.symbols = list(symbols)
        self.flush_every, self.flush_s = int(flush_every), float(flush_s)
        self._events: list[Event] = []
        self._arrivals: list[tuple] = []
        existing = sorted(self.dir.glob("seg-*"))
        self._segment = int(existing[-1].name.split("-")[1]) if existing else 0
        self._last_flush = time.monotonic()
        self.recorded = 0
        self.failed = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="market-recorder")
        self._writes: list[Future] = []

    def record(self, ev: Event, audit_seq: int, t_apply_ms: int) -> None:
        """Keep one market event (call just before the session applies it)."""
        if not isinstance(ev, MARKET_TYPES):
            return
        self._events.append(ev)
        self._arrivals.append((type(ev).__name__, ev.symbol, int(ev.ts_exch), int(ev.ts_recv),
                               int(t_apply_ms), int(audit_seq)))
        self.recorded += 1
        if len(self._events) >= self.flush_every:
            self.flush()

    def maybe_flush(self) -> None:
        """Flush when ``flush_s`` has passed since the last one (the session's timer calls it)."""
        if self._events and time.monotonic() - self._last_flush >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        """Hand the buffer to the writer thread (segments keep their order)."""
        self._last_flush = time.monotonic()
        if not self._events:
            return
        events, self._events = self._events, []
        arrivals, self._arrivals = self._arrivals, []
        self._segment += 1
        self._writes = [f for f in self._writes if not f.done()]
        self._writes.append(self._pool.submit(self._write, self._segment, events, arrivals))

    def _write(self, segment: int, events: list[Event], arrivals: list[tuple]) -> None:
        final = self.dir / f"seg-{segment:06d}"
        tmp = self.dir / f".tmp-seg-{segment:06d}"
        try:
            if tmp.exists():
                shutil.rmtree(tmp)
            MarketData.from_events(events, symbols=self.symbols).save(tmp)
            pd.DataFrame(arrivals, columns=ARRIVAL_COLUMNS).to_parquet(tmp / "arrivals.parquet")
            os.replace(tmp, final)
        except Exception as e:  # the recording is evidence, not the trading path: report, go on
            self.failed += 1
            log.error("market recording: segment %d (%d events) not written: %s", segment, len(events), e)

    def close(self) -> None:
        """Write what is buffered and wait for every segment to be on disk."""
        self.flush()
        for f in self._writes:
            f.result()
        self._pool.shutdown(wait=True)


@dataclass
class Recording:
    """A session's recorded market: ``market`` by exchange time, ``arrivals`` in the
    order the session applied the events (columns ``ARRIVAL_COLUMNS``)."""

    market: MarketData
    arrivals: pd.DataFrame


def _concat(parts: list[MarketData]) -> MarketData:
    symbols: list[str] = []
    for md in parts:
        symbols += [s for s in md.symbols if s not in symbols]
    streams: dict[str, list[np.ndarray]] = {name: [] for name in STREAMS.values()}
    interval = parts[0].interval_ms
    for md in parts:
        remap = np.array([symbols.index(s) for s in md.symbols], dtype=np.int16)
        for kind, a in md.arrays().items():
            if len(a):
                b = a.copy()
                b["sym"] = remap[b["sym"]]
                streams[STREAMS[kind]].append(b)
    arrays = {name: np.concatenate(v) for name, v in streams.items() if v}
    return MarketData(**arrays, symbols=symbols, interval_ms=interval)


def load_recording(run_dir: str | Path) -> Recording:
    """Read back what a session's ``MarketRecorder`` wrote."""
    d = Path(run_dir) / MARKET_DIR
    segs = sorted(p for p in d.glob("seg-*") if p.is_dir()) if d.is_dir() else []
    if not segs:
        raise DataError(f"{d}: no recorded market events (sessions record them since issue 14; "
                        f"a session that received no market data has none)")
    market = _concat([MarketData.load(p) for p in segs])
    arrivals = pd.concat([pd.read_parquet(p / "arrivals.parquet") for p in segs], ignore_index=True)
    return Recording(market, arrivals)
