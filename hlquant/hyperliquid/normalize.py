"""Hyperliquid messages (WebSocket channels and REST answers) -> core events.

Exchange time comes from the message; receive time from the caller's clock,
so latency is measurable end to end. A message that does not have the
expected shape, or carries a price or size that is not a finite positive
number, raises ``ValueError`` (the feed counts it and drops it); nothing
malformed becomes an event. Order statuses are read by
``errors.classify_status``: every kind of cancel is a cancel.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from hlquant.core.events import (
    BBO,
    BookSnapshot,
    Candle,
    Event,
    Fill,
    FundingPayment,
    FundingRate,
    MarkPrice,
    OrderAck,
    OrderStatus,
    Side,
    Trade,
)
from hlquant.hyperliquid.errors import classify_status

_TID_BIT = 1 << 62  # synthesized trade ids live above every real one


def side(s: Any) -> Side:
    if s == "B":
        return Side.BUY
    if s == "A":
        return Side.SELL
    raise ValueError(f"bad side {s!r}")


def positive(x: Any, what: str = "value") -> float:
    """A finite number > 0 (prices, sizes), from a decimal string or a number."""
    v = finite(x, what)
    if v <= 0:
        raise ValueError(f"{what} must be > 0, got {x!r}")
    return v


def finite(x: Any, what: str = "value") -> float:
    if isinstance(x, bool) or not isinstance(x, (str, int, float)):
        raise ValueError(f"{what} is not a number: {x!r}")
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{what} is not finite: {x!r}")
    return v


def non_negative(x: Any, what: str = "value") -> float:
    v = finite(x, what)
    if v < 0:
        raise ValueError(f"{what} must be >= 0, got {x!r}")
    return v


def ms(x: Any, what: str = "time") -> int:
    if isinstance(x, bool) or not isinstance(x, int) or x < 0:
        raise ValueError(f"{what} is not a time in ms: {x!r}")
    return x


def text(x: Any, what: str = "field") -> str:
    if not isinstance(x, str) or not x:
        raise ValueError(f"{what} is not a non-empty string: {x!r}")
    return x


def _levels(levels: Any) -> list[tuple[float, float]]:
    if not isinstance(levels, list):
        raise ValueError("book side is not a list")
    return [(positive(lv["px"], "px"), positive(lv["sz"], "sz")) for lv in levels]


def l2_book(d: dict[str, Any], recv: int) -> BookSnapshot:
    bids, asks = d["levels"]
    b, a = _levels(bids), _levels(asks)
    if b and a and b[0][0] >= a[0][0]:
        raise ValueError(f"crossed book: bid {b[0][0]} >= ask {a[0][0]}")
    return BookSnapshot(ms(d["time"]), recv, text(d["coin"], "coin"), b, a)


def trades(d: list[dict[str, Any]], recv: int) -> list[Trade]:
    if not isinstance(d, list):
        raise ValueError("trades data is not a list")
    return [Trade(ms(t["time"]), recv, text(t["coin"], "coin"), side(t["side"]), positive(t["px"], "px"),
                  positive(t["sz"], "sz"), int(t.get("tid", 0))) for t in d]


def bbo(d: dict[str, Any], recv: int) -> BBO | None:
    b, a = d["bbo"]
    if b is None or a is None:
        return None
    bid, ask = positive(b["px"], "bid px"), positive(a["px"], "ask px")
    if bid >= ask:
        raise ValueError(f"crossed bbo: {bid} >= {ask}")
    return BBO(ms(d["time"]), recv, text(d["coin"], "coin"), bid, positive(b["sz"], "bid sz"), ask,
               positive(a["sz"], "ask sz"))


def candle(d: dict[str, Any], recv: int) -> Candle:
    o, h, lo, c = (positive(d[k], k) for k in ("o", "h", "l", "c"))
    return Candle(ms(d["T"], "T") + 1, recv, text(d["s"], "s"), text(d["i"], "i"), o, h, lo, c,
                  non_negative(d["v"], "v"), int(d.get("n", 0)), ms(d["t"], "t"))


def asset_ctx(d: dict[str, Any], recv: int) -> list[Event]:
    c = d["ctx"]
    coin = text(d["coin"], "coin")
    out: list[Event] = []
    if c.get("markPx") is not None:
        oracle = positive(c["oraclePx"], "oraclePx") if c.get("oraclePx") is not None else float("nan")
        out.append(MarkPrice(recv, recv, coin, positive(c["markPx"], "markPx"), oracle))
    return out


def funding_history(rows: list[dict[str, Any]], recv: int) -> list[FundingRate]:
    return [FundingRate(ms(r["time"]), recv, text(r["coin"], "coin"), finite(r["fundingRate"], "fundingRate"),
                        finite(r.get("premium", 0.0), "premium")) for r in rows]


def fill_tid(f: dict[str, Any]) -> int:
    """The fill's trade id, or for older fills that have none, an id synthesized from
    what every real fill has (hash, oid, time, size, price, start position), so that
    de-duplicating by id never merges two real fills (500 tid-less recorded fills
    are 500 distinct ids)."""
    tid = f.get("tid")
    if isinstance(tid, int) and not isinstance(tid, bool) and tid > 0:
        return tid
    key = "|".join(str(f.get(k, "")) for k in ("hash", "oid", "time", "sz", "px", "startPosition", "side", "coin"))
    return _TID_BIT | int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") >> 2


def fill(f: dict[str, Any], recv: int) -> Fill:
    crossed = bool(f.get("crossed", True))
    liquidity = "liquidation" if f.get("liquidation") else ("taker" if crossed else "maker")
    return Fill(ms(f["time"]), recv, text(f["coin"], "coin"), f.get("cloid") or "", int(f["oid"]), side(f["side"]),
                positive(f["px"], "px"), positive(f["sz"], "sz"), finite(f.get("fee", 0.0), "fee"), liquidity,
                fill_tid(f), "", finite(f.get("closedPnl", 0.0), "closedPnl"))


def order_update(u: dict[str, Any], recv: int) -> OrderAck:
    """An ``orderUpdates`` entry or an ``orderStatus`` record -> OrderAck (status and code
    from ``classify_status``; the status string kept as ``error`` for a rejection)."""
    o = u["order"]
    raw = text(u["status"], "status")
    status, code = classify_status(raw)
    left = non_negative(o["sz"], "sz")
    orig = non_negative(o.get("origSz", o["sz"]), "origSz")
    return OrderAck(int(u.get("statusTimestamp", o.get("timestamp", recv))), recv, o.get("cloid") or "",
                    text(o["coin"], "coin"), status, int(o["oid"]), max(orig - left, 0.0), 0.0,
                    raw if status == OrderStatus.REJECTED else "", code)


def user_funding(f: dict[str, Any], recv: int) -> FundingPayment:
    """A funding payment: the WebSocket's flat row or the REST ``userFunding`` row, whose
    values are nested under ``delta``."""
    d = f["delta"] if isinstance(f.get("delta"), dict) else f
    return FundingPayment(ms(f["time"]), recv, text(d["coin"], "coin"), finite(d["fundingRate"], "fundingRate"),
                          finite(d["szi"], "szi"), float("nan"), finite(d["usdc"], "usdc"))


@dataclass(frozen=True)
class FrontendOrder:
    """An order as ``frontendOpenOrders`` / ``orderStatus`` / ``historicalOrders`` show it."""

    coin: str
    oid: int
    side: Side
    limit_px: float
    sz: float
    orig_sz: float
    timestamp: int
    order_type: str  # "Limit", "Stop Market", "Take Profit Limit", ...
    tif: str | None
    reduce_only: bool
    is_trigger: bool
    trigger_px: float
    trigger_condition: str  # "N/A", "Price above 10.004", ...
    is_position_tpsl: bool
    cloid: str = ""
    children: tuple[FrontendOrder, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class HistoricalOrder:
    order: FrontendOrder
    status: OrderStatus
    raw_status: str  # the exchange's own word (e.g. "scheduledCancel")
    status_ts: int


@dataclass(frozen=True)
class PortfolioPeriod:
    account_value: list[tuple[int, float]]
    pnl: list[tuple[int, float]]
    volume: float


def frontend_order(o: dict[str, Any]) -> FrontendOrder:
    return FrontendOrder(
        text(o["coin"], "coin"), int(o["oid"]), side(o["side"]), finite(o["limitPx"], "limitPx"),
        non_negative(o["sz"], "sz"), non_negative(o.get("origSz", o["sz"]), "origSz"), ms(o["timestamp"]),
        str(o.get("orderType", "Limit")), o.get("tif"), bool(o.get("reduceOnly", False)),
        bool(o.get("isTrigger", False)), finite(o.get("triggerPx", 0.0), "triggerPx"),
        str(o.get("triggerCondition", "N/A")), bool(o.get("isPositionTpsl", False)), o.get("cloid") or "",
        tuple(frontend_order(c) for c in o.get("children") or ()))


def historical_order(h: dict[str, Any]) -> HistoricalOrder:
    raw = text(h["status"], "status")
    return HistoricalOrder(frontend_order(h["order"]), classify_status(raw)[0], raw, int(h.get("statusTimestamp", 0)))


def portfolio(rows: list[Any]) -> dict[str, PortfolioPeriod]:
    out = {}
    for name, d in rows:
        out[str(name)] = PortfolioPeriod([(int(t), finite(v)) for t, v in d.get("accountValueHistory", [])],
                                         [(int(t), finite(v)) for t, v in d.get("pnlHistory", [])],
                                         finite(d.get("vlm", 0.0), "vlm"))
    return out
