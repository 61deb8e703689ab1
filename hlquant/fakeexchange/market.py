"""Market state of the fake exchange and its Hyperliquid wire shapes.

Keeps what /info and the WebSocket must answer from (last book per coin,
mids, candle and funding history, asset contexts) and renders core events in
the exact shapes Hyperliquid sends: decimal strings for numbers, ``"B"``/``"A"``
sides, millisecond times.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from hlquant.core.assets import AssetSpec
from hlquant.core.events import BBO, BookSnapshot, Candle, FundingRate, MarkPrice, Side, Trade
from hlquant.hyperliquid.wire import float_to_wire

#: Hyperliquid's perp universe begins with these (asset id = index).
REAL_UNIVERSE_HEAD = [("BTC", 5), ("ETH", 4), ("ATOM", 2), ("MATIC", 1), ("DYDX", 1), ("SOL", 2),
                      ("AVAX", 2), ("BNB", 3), ("APE", 1), ("OP", 1), ("LTC", 2), ("ARB", 1)]
CANDLE_CAP = 5000
FUNDING_CAP = 500


def num(x: float) -> str:
    """A float as the exchange's decimal string (rounded to 8 dp first, never refused)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "0"
    return float_to_wire(round(float(x), 8))


def side_wire(side: int) -> str:
    return "B" if int(side) > 0 else "A"


def build_universe(assets: dict[str, AssetSpec]) -> list[dict[str, Any]]:
    """Meta universe where each asset sits at its real asset id."""
    by_id = {a.asset_id: (s, a) for s, a in assets.items()}
    n = max(by_id) + 1 if by_id else 0
    head = dict(enumerate(REAL_UNIVERSE_HEAD))
    out = []
    for i in range(n):
        if i in by_id:
            s, a = by_id[i]
            out.append({"szDecimals": a.sz_decimals, "name": s, "maxLeverage": a.max_leverage})
        else:
            name, szd = head.get(i, (f"ASSET{i}", 2))
            out.append({"szDecimals": szd, "name": name, "maxLeverage": 20})
    return out


@dataclass
class MarketState:
    assets: dict[str, AssetSpec]
    books: dict[str, dict[str, Any]] = field(default_factory=dict)
    bbos: dict[str, dict[str, Any]] = field(default_factory=dict)
    mids: dict[str, float] = field(default_factory=dict)
    candles: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    funding: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    ctx: dict[str, dict[str, Any]] = field(default_factory=dict)
    tid: int = 0
    candle_page: int = CANDLE_CAP
    candle_history: int = CANDLE_CAP

    # --- updates: each returns the WS messages (channel, data, sub identifier) ---------
    def on_trade(self, ev: Trade) -> list[tuple[str, Any, str]]:
        self.tid += 1
        self.mids[ev.symbol] = ev.px if ev.symbol not in self.bbos else self.mids.get(ev.symbol, ev.px)
        data = [{"coin": ev.symbol, "side": side_wire(ev.side), "px": num(ev.px), "sz": num(ev.sz),
                 "hash": "0x" + f"{self.tid:064x}", "time": ev.ts_exch, "tid": ev.tid or self.tid,
                 "users": ["0x" + "0" * 40, "0x" + "0" * 40]}]
        return [("trades", data, f"trades:{ev.symbol.lower()}"), self._mids_msg()]

    def on_book(self, ev: BookSnapshot) -> list[tuple[str, Any, str]]:
        def lv(levels):
            return [{"px": num(p), "sz": num(s), "n": 1} for p, s in levels if s > 0 and p == p]

        data = {"coin": ev.symbol, "time": ev.ts_exch, "levels": [lv(ev.bids), lv(ev.asks)]}
        self.books[ev.symbol] = data
        if ev.bids and ev.asks:
            self.mids[ev.symbol] = (ev.bids[0][0] + ev.asks[0][0]) / 2
        return [("l2Book", data, f"l2Book:{ev.symbol.lower()}"), self._mids_msg()]

    def on_bbo(self, ev: BBO) -> list[tuple[str, Any, str]]:
        data = {"coin": ev.symbol, "time": ev.ts_exch,
                "bbo": [{"px": num(ev.bid_px), "sz": num(ev.bid_sz), "n": 1},
                        {"px": num(ev.ask_px), "sz": num(ev.ask_sz), "n": 1}]}
        self.bbos[ev.symbol] = data
        self.mids[ev.symbol] = (ev.bid_px + ev.ask_px) / 2
        return [("bbo", data, f"bbo:{ev.symbol.lower()}")]

    def on_candle(self, ev: Candle) -> list[tuple[str, Any, str]]:
        iv = ev.interval or "1m"
        step = _interval_ms(iv)
        t_open = ev.ts_open or ev.ts_exch - step
        data = {"t": t_open, "T": t_open + step - 1, "s": ev.symbol, "i": iv, "o": num(ev.open),
                "c": num(ev.close), "h": num(ev.high), "l": num(ev.low), "v": num(ev.volume),
                "n": int(ev.n)}
        self.candles[(ev.symbol, iv)].append(data)
        if ev.symbol not in self.books and ev.symbol not in self.bbos:
            self.mids[ev.symbol] = ev.close
        return [("candle", data, f"candle:{ev.symbol.lower()},{iv}")]

    def on_funding(self, ev: FundingRate) -> list[tuple[str, Any, str]]:
        self.funding[ev.symbol].append({"coin": ev.symbol, "fundingRate": num(ev.rate),
                                        "premium": num(ev.premium), "time": ev.ts_exch})
        c = self.ctx.setdefault(ev.symbol, {})
        c.update(funding=ev.rate, oraclePx=ev.oracle_px, premium=ev.premium)
        return [self._ctx_msg(ev.symbol)]

    def on_mark(self, ev: MarkPrice) -> list[tuple[str, Any, str]]:
        c = self.ctx.setdefault(ev.symbol, {})
        c.update(markPx=ev.mark_px, oraclePx=ev.oracle_px if ev.oracle_px == ev.oracle_px else ev.mark_px)
        return [self._ctx_msg(ev.symbol)]

    # --- views -------------------------------------------------------------------
    def _mids_msg(self) -> tuple[str, Any, str]:
        return ("allMids", {"mids": {s: num(p) for s, p in self.mids.items()}}, "allMids")

    def asset_ctx(self, symbol: str) -> dict[str, Any]:
        c = self.ctx.get(symbol, {})
        mid = self.mids.get(symbol, math.nan)
        mark = c.get("markPx", mid)
        return {"funding": num(c.get("funding", 0.0)), "openInterest": "0", "prevDayPx": num(mid),
                "dayNtlVlm": "0", "premium": num(c.get("premium", 0.0)),
                "oraclePx": num(c.get("oraclePx", mark)), "markPx": num(mark), "midPx": num(mid),
                "impactPxs": [num(mid), num(mid)]}

    def _ctx_msg(self, symbol: str) -> tuple[str, Any, str]:
        return ("activeAssetCtx", {"coin": symbol, "ctx": self.asset_ctx(symbol)},
                f"activeAssetCtx:{symbol.lower()}")

    def l2_book(self, coin: str, now: int) -> dict[str, Any] | None:
        if coin in self.books:
            return self.books[coin]
        if coin in self.bbos:
            b = self.bbos[coin]
            return {"coin": coin, "time": b["time"], "levels": [[b["bbo"][0]], [b["bbo"][1]]]}
        if coin in self.mids:
            m = self.mids[coin]
            spec = self.assets[coin]
            bid, ask = spec.round_price(m * 0.9999), spec.round_price(m * 1.0001)
            return {"coin": coin, "time": now, "levels": [[{"px": num(bid), "sz": "1", "n": 1}],
                                                           [{"px": num(ask), "sz": "1", "n": 1}]]}
        return None

    def candle_snapshot(self, coin: str, interval: str, start: int, end: int) -> list[dict[str, Any]]:
        """Like the real API: only the most recent ``candle_history`` candles exist at all,
        and one answer holds at most ``candle_page`` of them, from ``start`` on."""
        reachable = self.candles.get((coin, interval), [])[-self.candle_history:]
        rows = [c for c in reachable if start <= c["t"] <= end]
        return rows[: self.candle_page]

    def funding_history(self, coin: str, start: int, end: int | None) -> list[dict[str, Any]]:
        rows = [f for f in self.funding.get(coin, []) if f["time"] >= start and (end is None or f["time"] <= end)]
        return rows[:FUNDING_CAP]


def _interval_ms(iv: str) -> int:
    unit = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "M": 2_592_000_000}[iv[-1]]
    return int(iv[:-1]) * unit


def side_of(b: bool) -> Side:
    return Side.BUY if b else Side.SELL
