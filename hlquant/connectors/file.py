"""File connector: any external series from a CSV or Parquet file.

The file format is ``hlquant.data.series`` (``ts``, optional ``ts_recv`` and
``symbol``, one column per series; docs/data.md). A backtest reads the whole
file (``history``) and applies each row at its receive time. In paper and live
sessions the file is a recorded stream (``events``): at start the latest row of
each series already received is emitted (the state of the world when the session
starts), then every row whose receive time comes, re-reading the file when it
changes, so a recorder appending to it feeds the session as it writes. A file
that turns bad mid-session is logged and counted; the last good version stays in
use and the session goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hlquant.bus.base import EventBus
from hlquant.connectors.base import SignalConnector, wait_or_stop
from hlquant.core.errors import DataError
from hlquant.core.events import Signal
from hlquant.data.market import MarketData
from hlquant.data.series import SignalSeries, read_signal_file

log = logging.getLogger(__name__)


class FileConnector(SignalConnector):
    """Series from one file (module docstring).

    - path: CSV, CSV.gz or Parquet file.
    - columns: the value columns to read (default: every column but ts/ts_recv/symbol).
    - prefix: prepended to each column name to name its series.
    - lag_ms: receive time = ts + lag_ms when the file has no ts_recv column.
    - poll_s: paper/live: how often the file is checked for changes.
    """

    name = "file"

    def __init__(self, path: str | Path, columns: Sequence[str] | None = None, prefix: str = "",
                 lag_ms: int = 0, poll_s: float = 1.0, *, bus: EventBus | None = None,
                 clock_ms: Callable[[], int] | None = None) -> None:
        super().__init__(bus)
        self.path = Path(path).expanduser()
        self.columns = None if columns is None else [str(c) for c in columns]
        self.prefix, self.lag_ms, self.poll_s = prefix, int(lag_ms), float(poll_s)
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._series: SignalSeries | None = None
        self._stamp: tuple[int, int] | None = None
        self.counters.update({"reloads": 0, "rows": 0})

    def signal_names(self) -> set[str] | None:
        if self.columns is not None:
            return {self.prefix + c.strip().lower() for c in self.columns}
        return None

    def connect(self) -> SignalSeries:
        """Read (or re-read, if the file changed) and validate the file."""
        st = self.path.stat() if self.path.exists() else None
        stamp = (st.st_mtime_ns, st.st_size) if st is not None else None
        if self._series is None or stamp != self._stamp:
            self._series = read_signal_file(self.path, self.columns, self.prefix, self.lag_ms)
            self._stamp = stamp
            self.counters["reloads"] += 1
            self.counters["rows"] = len(self._series)
        return self._series

    def normalize(self, raw: tuple[int, int, Any, str, float]) -> list[Signal]:
        """``(ts_exch, ts_recv, symbol, name, value)`` -> ``[Signal]``."""
        te, tr, sym, name, value = raw
        self.counters["messages"] += 1
        return [Signal(int(te), int(tr), str(name), float(value), None if sym is None else str(sym))]

    def history(self, market: MarketData) -> SignalSeries:
        return self.connect()

    async def events(self, stop: asyncio.Event) -> AsyncIterator[Signal]:
        s = await asyncio.to_thread(self.connect)
        now = self.clock_ms()
        past = s.ts_recv <= now
        latest: dict[tuple[Any, str], int] = {}
        for i in np.flatnonzero(past).tolist():  # receive order: the last one wins
            latest[(s.symbol[i], s.name[i])] = i
        for i in sorted(latest.values()):
            for ev in self.normalize((s.ts_exch[i], s.ts_recv[i], s.symbol[i], s.name[i], s.value[i])):
                self.counters["events"] += 1
                yield ev
        cursor = now
        while not await wait_or_stop(stop, min(self.poll_s, self._until_next(s, cursor))):
            try:
                s = await asyncio.to_thread(self.connect)
            except (DataError, OSError) as e:  # a recorder mid-write, a bad row: keep the last good file
                self.counters["bad_messages"] += 1
                log.warning("%s: %s; keeping the last good version", self.path.name, e)
            now = self.clock_ms()
            due = np.flatnonzero((s.ts_recv > cursor) & (s.ts_recv <= now))
            for i in due.tolist():
                for ev in self.normalize((s.ts_exch[i], s.ts_recv[i], s.symbol[i], s.name[i], s.value[i])):
                    self.counters["events"] += 1
                    yield ev
            cursor = now

    def _until_next(self, s: SignalSeries, cursor: int) -> float:
        """Seconds until the next row is due (rows are sorted by receive time)."""
        j = int(np.searchsorted(s.ts_recv, cursor, side="right"))
        if j >= len(s):
            return self.poll_s
        return max(0.0, (int(s.ts_recv[j]) - self.clock_ms()) / 1000.0)
