"""Market state of the fake exchange and its Hyperliquid wire shapes.

Keeps what /info and the WebSocket must answer from (last book per coin,
mids, candle and funding history, asset contexts with a rolling 24 h
volume) and renders core events in the exact shapes Hyperliquid sends:
decimal strings for numbers (always with a decimal point, as every one of
the 9,414 numbers in the recorded real bodies has: ``"30135.0"``, ``"0.0"``),
``"B"``/``"A"`` sides, millisecond times, candles on their interval grid.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from hlquant.core.assets import AssetSpec
from hlquant.core.events import BBO, BookSnapshot, Candle, FundingRate, MarkPrice, Side, Trade
from hlquant.hyperliquid.wire import float_to_wire

#: Hyperliquid's perp universe begins with these (asset id = index).
REAL_UNIVERSE_HEAD = [("BTC", 5), ("ETH", 4), ("ATOM", 2), ("MATIC", 1), ("DYDX", 1), ("SOL", 2),
                      ("AVAX", 2), ("BNB", 3), ("APE", 1), ("OP", 1), ("LTC", 2), ("ARB", 1)]
CANDLE_CAP = 5000
DAY_MS = 86_400_000
INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "3d", "1w", "1M")


def num(x: float | None) -> str:
    """A number as the exchange writes it: at most 8 decimals, trailing zeros stripped,
    but always a decimal point (``90130`` -> ``"90130.0"``, ``0`` -> ``"0.0"``)."""
    if x is None or not math.isfinite(x):
        return "0.0"
    s = float_to_wire(round(float(x), 8))
    if s == "-0":
        s = "0"
    return s if "." in s else s + ".0"


def side_wire(side: int) -> str:
    return "B" if int(side) > 0 else "A"


def interval_ms(iv: str) -> int:
    unit = {"m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS, "M": 30 * DAY_MS}[iv[-1]]
    return int(iv[:-1]) * unit


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


def level(px: float, sz: float, n: int = 1) -> dict[str, Any]:
    return {"px": num(px), "sz": num(sz), "n": n}


@dataclass
class MarketState:
    assets: dict[str, AssetSpec]
    books: dict[str, dict[str, Any]] = field(default_factory=dict)
    bbos: dict[str, dict[str, Any]] = field(default_factory=dict)
    mids: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    candles: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    funding: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    ctx: dict[str, dict[str, Any]] = field(default_factory=dict)
    day: dict[str, deque] = field(default_factory=lambda: defaultdict(deque))  # (t, base, ntl, px)
    day_sums: dict[str, list[float]] = field(default_factory=lambda: defaultdict(lambda: [0.0, 0.0]))
    candle_volume: set[str] = field(default_factory=set)  # coins whose volume comes from candles
    tid: int = 0
    candle_page: int = CANDLE_CAP
    candle_history: int = CANDLE_CAP

    # --- updates: each returns the WS messages (channel, data, sub identifier) ---------
    def on_trade(self, ev: Trade) -> list[tuple[str, Any, str]]:
        self.tid += 1
        self.last[ev.symbol] = ev.px
        if ev.symbol not in self.bbos and ev.symbol not in self.books:
            self.mids[ev.symbol] = ev.px
        if ev.symbol not in self.candle_volume:
            self._volume(ev.symbol, ev.ts_exch, ev.sz, ev.px * ev.sz, ev.px)
        data = [{"coin": ev.symbol, "side": side_wire(ev.side), "px": num(ev.px), "sz": num(ev.sz),
                 "hash": "0x" + f"{self.tid:064x}", "time": ev.ts_exch, "tid": ev.tid or self.tid,
                 "users": ["0x" + "0" * 40, "0x" + "0" * 40]}]
        return [("trades", data, f"trades:{ev.symbol.lower()}"), self._mids_msg()]

    def on_book(self, ev: BookSnapshot) -> list[tuple[str, Any, str]]:
        def lv(levels):
            return [level(p, s) for p, s in levels if s > 0 and p == p]

        data = {"coin": ev.symbol, "time": ev.ts_exch, "levels": [lv(ev.bids), lv(ev.asks)]}
        self.books[ev.symbol] = data
        out = [("l2Book", data, f"l2Book:{ev.symbol.lower()}")]
        if ev.bids and ev.asks:
            self.mids[ev.symbol] = (ev.bids[0][0] + ev.asks[0][0]) / 2
            bbo = {"coin": ev.symbol, "time": ev.ts_exch,
                   "bbo": [data["levels"][0][0] if data["levels"][0] else None,
                           data["levels"][1][0] if data["levels"][1] else None]}
            if self.bbos.get(ev.symbol, {}).get("bbo") != bbo["bbo"]:
                out.append(("bbo", bbo, f"bbo:{ev.symbol.lower()}"))  # bbo streams on change
            self.bbos[ev.symbol] = bbo
        out.append(self._mids_msg())
        return out

    def on_bbo(self, ev: BBO) -> list[tuple[str, Any, str]]:
        data = {"coin": ev.symbol, "time": ev.ts_exch, "bbo": [level(ev.bid_px, ev.bid_sz), level(ev.ask_px, ev.ask_sz)]}
        self.bbos[ev.symbol] = data
        self.mids[ev.symbol] = (ev.bid_px + ev.ask_px) / 2
        return [("bbo", data, f"bbo:{ev.symbol.lower()}"), self._mids_msg()]

    def on_candle(self, ev: Candle) -> list[tuple[str, Any, str]]:
        iv = ev.interval or "1m"
        step = interval_ms(iv)
        t_open = ev.ts_open or ev.ts_exch - step
        t_open -= t_open % step  # real candles start on their interval's grid
        data = {"t": t_open, "T": t_open + step - 1, "s": ev.symbol, "i": iv, "o": num(ev.open),
                "c": num(ev.close), "h": num(ev.high), "l": num(ev.low), "v": num(ev.volume),
                "n": int(ev.n)}
        self.candles[(ev.symbol, iv)].append(data)
        self.last[ev.symbol] = ev.close
        self.candle_volume.add(ev.symbol)
        self._volume(ev.symbol, ev.ts_exch, ev.volume, ev.volume * ev.close, ev.close)
        if ev.symbol not in self.books and ev.symbol not in self.bbos:
            self.mids[ev.symbol] = ev.close
        return [("candle", data, f"candle:{ev.symbol.lower()},{iv}"), self._mids_msg()]

    def on_funding(self, ev: FundingRate) -> list[tuple[str, Any, str]]:
        self.funding[ev.symbol].append({"coin": ev.symbol, "fundingRate": num(ev.rate),
                                        "premium": num(ev.premium), "time": ev.ts_exch})
        c = self.ctx.setdefault(ev.symbol, {})
        c.update(funding=ev.rate, premium=ev.premium)
        if ev.oracle_px == ev.oracle_px:
            c["oraclePx"] = ev.oracle_px
        return []

    def on_mark(self, ev: MarkPrice) -> list[tuple[str, Any, str]]:
        c = self.ctx.setdefault(ev.symbol, {})
        c.update(markPx=ev.mark_px, oraclePx=ev.oracle_px if ev.oracle_px == ev.oracle_px else ev.mark_px)
        return []

    def _volume(self, coin: str, t: int, base: float, ntl: float, px: float) -> None:
        """Rolling 24 h volume, kept as running sums (O(1) per event)."""
        d = self.day[coin]
        sums = self.day_sums[coin]
        d.append((t, base, ntl, px))
        sums[0] += base
        sums[1] += ntl
        while d and d[0][0] <= t - DAY_MS:
            _, b, n, _ = d.popleft()
            sums[0] -= b
            sums[1] -= n

    # --- views -------------------------------------------------------------------
    def _mids_msg(self) -> tuple[str, Any, str]:
        return ("allMids", {"mids": self.all_mids()}, "allMids")

    def all_mids(self) -> dict[str, str]:
        return {s: num(p) for s, p in self.mids.items()}

    def mark(self, symbol: str) -> float:
        c = self.ctx.get(symbol, {})
        return c.get("markPx") or self.mids.get(symbol) or self.last.get(symbol, math.nan)

    def asset_ctx(self, symbol: str, open_interest: float = 0.0) -> dict[str, Any]:
        """The perp asset context (the SDK's ``PerpAssetCtx``): funding, open interest (in
        coins), the price 24 h ago, the rolling 24 h notional and base volume, premium,
        oracle / mark / mid and the impact prices (the book's best levels)."""
        c = self.ctx.get(symbol, {})
        mid = self.mids.get(symbol)
        mark = self.mark(symbol)
        d = self.day.get(symbol) or ()
        prev = d[0][3] if d else mark
        base_vlm, ntl_vlm = self.day_sums[symbol] if symbol in self.day_sums else (0.0, 0.0)
        book = self.bbos.get(symbol)
        impact = None
        if book and book["bbo"][0] and book["bbo"][1]:
            impact = [book["bbo"][0]["px"], book["bbo"][1]["px"]]
        return {"funding": num(c.get("funding", 0.0)), "openInterest": num(open_interest),
                "prevDayPx": num(prev), "dayNtlVlm": num(max(ntl_vlm, 0.0)),
                "premium": num(c.get("premium", 0.0)), "oraclePx": num(c.get("oraclePx", mark)),
                "markPx": num(mark), "midPx": num(mid) if mid is not None else None,
                "impactPxs": impact, "dayBaseVlm": num(max(base_vlm, 0.0))}

    def l2_book(self, coin: str, now: int) -> dict[str, Any] | None:
        if coin in self.books:
            return self.books[coin]
        if coin in self.bbos:
            b = self.bbos[coin]
            return {"coin": coin, "time": b["time"], "levels": [[x for x in b["bbo"][:1] if x],
                                                                 [x for x in b["bbo"][1:] if x]]}
        if coin in self.mids:
            m = self.mids[coin]
            spec = self.assets[coin]
            bid, ask = spec.round_price(m * 0.9999), spec.round_price(m * 1.0001)
            return {"coin": coin, "time": now, "levels": [[level(bid, 1.0)], [level(ask, 1.0)]]}
        return None

    def bbo(self, coin: str, now: int) -> dict[str, Any] | None:
        if coin in self.bbos:
            return self.bbos[coin]
        book = self.l2_book(coin, now)
        if book is None:
            return None
        return {"coin": coin, "time": book["time"],
                "bbo": [book["levels"][0][0] if book["levels"][0] else None,
                        book["levels"][1][0] if book["levels"][1] else None]}

    def candle_snapshot(self, coin: str, interval: str, start: int, end: int) -> list[dict[str, Any]]:
        """Like the real API: only the most recent ``candle_history`` candles exist at all,
        and one answer holds at most ``candle_page`` of them, from ``start`` on."""
        reachable = self.candles.get((coin, interval), [])[-self.candle_history:]
        rows = [c for c in reachable if start <= c["t"] <= end]
        return rows[: self.candle_page]

    def funding_history(self, coin: str, start: int, end: int | None) -> list[dict[str, Any]]:
        """Every funding print in [start, end] (a real answer held 1,038 rows: no 500 cap)."""
        return [f for f in self.funding.get(coin, []) if f["time"] >= start and (end is None or f["time"] <= end)]


def side_of(b: bool) -> Side:
    return Side.BUY if b else Side.SELL
