"""Hyperliquid's own asset contexts as signals: open interest, predicted funding, premium, volume.

The exchange publishes each perp's context (``activeAssetCtx`` on the WebSocket,
``metaAndAssetCtxs`` over REST): funding (the current, predicted rate of the next
hourly settlement), open interest in coins, premium, the rolling 24 h notional
volume, oracle / mark / mid prices and the price 24 h ago. This connector turns
the chosen fields into :class:`~hlquant.core.events.Signal` events named
``prefix + field`` (default ``hl.open_interest``, ``hl.funding``, ``hl.premium``,
``hl.day_ntl_vlm``), one per symbol:

- backtests: ``history`` reads ``asset_ctxs.parquet`` (one row per coin and minute,
  written by ``hlquant record import`` from the public archive; layout in
  ``hlquant.data.signals``), each row received at its minute stamp;
- ``source: ws`` (default): the contexts the market feed already receives on
  ``activeAssetCtx`` (no extra connection; the feed calls ``normalize``);
- ``source: rest``: ``metaAndAssetCtxs`` polled every ``interval_s`` through the
  info client (its IP weight budget applies).

Context messages carry no time: an observation is stamped with its receive time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hlquant.bus.base import EventBus
from hlquant.connectors.base import SignalConnector, wait_or_stop
from hlquant.core.errors import ConfigError, DataError, HlquantError
from hlquant.core.events import Signal
from hlquant.data.market import MarketData
from hlquant.data.series import SignalSeries
from hlquant.data.signals import ASSET_CTX_FIELDS, ASSET_CTXS_FILE, load_asset_ctxs

log = logging.getLogger(__name__)

WIRE_FIELDS: dict[str, str] = {
    "funding": "funding", "open_interest": "openInterest", "prev_day_px": "prevDayPx",
    "day_ntl_vlm": "dayNtlVlm", "premium": "premium", "oracle_px": "oraclePx", "mark_px": "markPx",
    "mid_px": "midPx",
}
"""Our field name (as in the archive, ``hlquant.data.signals``) -> the exchange's key."""
DEFAULT_FIELDS = ("open_interest", "funding", "premium", "day_ntl_vlm")
SOURCES = ("ws", "rest")


class HyperliquidContextConnector(SignalConnector):
    """Asset contexts as signals (module docstring).

    - symbols: coins to emit (others in a reply are ignored).
    - fields: which context fields (``WIRE_FIELDS`` keys).
    - prefix ("hl."): series name = prefix + field.
    - source ("ws"): ``ws`` (the market feed's activeAssetCtx) or ``rest`` (polling).
    - interval_s (60): polling interval of ``source: rest``.
    - path: backtests: the directory holding ``asset_ctxs.parquet``.
    """

    name = "hyperliquid_ctx"

    def __init__(self, symbols: Sequence[str], fields: Sequence[str] = DEFAULT_FIELDS, prefix: str = "hl.",
                 source: str = "ws", interval_s: float = 60.0, path: str | Path | None = None, *,
                 info: Any = None, bus: EventBus | None = None,
                 clock_ms: Callable[[], int] | None = None) -> None:
        super().__init__(bus)
        bad = [f for f in fields if f not in WIRE_FIELDS]
        if bad:
            raise ConfigError(f"hyperliquid_ctx: unknown field(s) {bad}; valid: {sorted(WIRE_FIELDS)}")
        if source not in SOURCES:
            raise ConfigError(f"hyperliquid_ctx: source must be one of {SOURCES}, got {source!r}")
        if float(interval_s) <= 0:
            raise ConfigError(f"hyperliquid_ctx: interval_s must be > 0, got {interval_s!r}")
        self.symbols = set(symbols)
        self.fields, self.prefix, self.source = tuple(fields), prefix, source
        self.interval_s = float(interval_s)
        self.path = Path(path).expanduser() if path else None
        self.info = info
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.counters.update({"polls": 0, "poll_errors": 0})

    def signal_names(self) -> set[str] | None:
        return {self.prefix + f for f in self.fields}

    def connect(self) -> Any:
        """The info client of ``source: rest`` (the caller passes one, or one is made)."""
        if self.info is None:
            raise ConfigError("hyperliquid_ctx source: rest needs an info client (live.url)")
        return self.info

    def _ctx(self, coin: str, ctx: dict[str, Any], recv: int) -> list[Signal]:
        out = []
        for f in self.fields:
            raw = ctx.get(WIRE_FIELDS[f])
            if raw is None:
                continue  # e.g. no mid price while the book is empty
            v = float(raw)
            if not np.isfinite(v):
                raise ValueError(f"{coin} {WIRE_FIELDS[f]} is not finite: {raw!r}")
            out.append(Signal(recv, recv, self.prefix + f, v, coin))
        return out

    def normalize(self, raw: Any, recv: int | None = None) -> list[Signal]:
        """An ``activeAssetCtx`` data object (``{"coin", "ctx"}``) or a
        ``metaAndAssetCtxs`` reply (``[meta, [ctx, ...]]``) -> signals of our symbols."""
        self.counters["messages"] += 1
        recv = self.clock_ms() if recv is None else recv
        if isinstance(raw, dict) and "coin" in raw and "ctx" in raw:
            coin = str(raw["coin"])
            return self._ctx(coin, raw["ctx"], recv) if coin in self.symbols else []
        if isinstance(raw, (list, tuple)) and len(raw) == 2 and isinstance(raw[0], dict):
            universe = raw[0].get("universe")
            ctxs = raw[1]
            if not isinstance(universe, list) or not isinstance(ctxs, list) or len(universe) != len(ctxs):
                raise ValueError("metaAndAssetCtxs: universe and contexts do not line up")
            out: list[Signal] = []
            for a, ctx in zip(universe, ctxs, strict=True):
                if a.get("name") in self.symbols and isinstance(ctx, dict):
                    out += self._ctx(a["name"], ctx, recv)
            return out
        raise ValueError(f"not an asset context message: {str(raw)[:120]!r}")

    def history(self, market: MarketData) -> SignalSeries:
        if self.path is None:
            raise ConfigError("hyperliquid_ctx in a backtest needs connectors.<name>.path (or data.path): "
                              f"the directory with {ASSET_CTXS_FILE} (hlquant record import writes it)")
        if not (self.path / ASSET_CTXS_FILE).is_file():
            raise DataError(f"{self.path / ASSET_CTXS_FILE}: no such file (hlquant record import writes it)")
        f = load_asset_ctxs(self.path, symbols=sorted(self.symbols))
        parts = []
        for fld in self.fields:
            if fld not in ASSET_CTX_FIELDS:
                raise ConfigError(f"hyperliquid_ctx: field {fld!r} is not in the archive ({ASSET_CTX_FIELDS})")
            v = f[fld].to_numpy(np.float64)
            m = np.isfinite(v)
            ts = f["ts_exch"].to_numpy(np.int64)[m]
            parts.append(pd.DataFrame({"ts_exch": ts, "ts_recv": ts, "symbol": f["symbol"].to_numpy(object)[m],
                                       "name": self.prefix + fld, "value": v[m]}))
        return SignalSeries.from_frame(pd.concat(parts, ignore_index=True)) if parts else SignalSeries.empty()

    async def events(self, stop: asyncio.Event) -> AsyncIterator[Signal]:
        if self.source != "rest":
            raise ConfigError("hyperliquid_ctx source: ws rides on the market feed (HyperliquidFeed.ctx_signals)")
        info = self.connect()
        while not stop.is_set():
            try:
                reply = await asyncio.to_thread(info.meta_and_asset_ctxs)
                evs = self.normalize(list(reply))
                self.counters["polls"] += 1
            except (HlquantError, ValueError, KeyError, TypeError) as e:  # counted, retried next interval
                self.counters["poll_errors"] += 1
                self.counters["bad_messages"] += isinstance(e, (ValueError, KeyError, TypeError))
                log.warning("hyperliquid_ctx: %s", e)
                evs = []
            for ev in evs:
                self.counters["events"] += 1
                yield ev
            if await wait_or_stop(stop, self.interval_s):
                return
