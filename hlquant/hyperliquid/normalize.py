"""Hyperliquid messages (WebSocket channels and REST answers) -> core events.

Exchange time comes from the message; receive time from the caller's clock,
so latency is measurable end to end. Any message that does not have the
expected shape raises ``ValueError`` (the connector counts it and moves on).
"""

from __future__ import annotations

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

STATUS = {"open": OrderStatus.OPEN, "filled": OrderStatus.FILLED, "canceled": OrderStatus.CANCELED,
          "triggered": OrderStatus.TRIGGERED, "rejected": OrderStatus.REJECTED,
          "marginCanceled": OrderStatus.MARGIN_CANCELED}


def side(s: str) -> Side:
    if s == "B":
        return Side.BUY
    if s == "A":
        return Side.SELL
    raise ValueError(f"bad side {s!r}")


def _levels(levels: list[dict[str, Any]]) -> list[tuple[float, float]]:
    return [(float(lv["px"]), float(lv["sz"])) for lv in levels]


def l2_book(d: dict[str, Any], recv: int) -> BookSnapshot:
    bids, asks = d["levels"]
    return BookSnapshot(int(d["time"]), recv, d["coin"], _levels(bids), _levels(asks))


def trades(d: list[dict[str, Any]], recv: int) -> list[Trade]:
    return [Trade(int(t["time"]), recv, t["coin"], side(t["side"]), float(t["px"]), float(t["sz"]),
                  int(t.get("tid", 0))) for t in d]


def bbo(d: dict[str, Any], recv: int) -> BBO | None:
    b, a = d["bbo"]
    if b is None or a is None:
        return None
    return BBO(int(d["time"]), recv, d["coin"], float(b["px"]), float(b["sz"]), float(a["px"]), float(a["sz"]))


def candle(d: dict[str, Any], recv: int) -> Candle:
    return Candle(int(d["T"]) + 1, recv, d["s"], d["i"], float(d["o"]), float(d["h"]), float(d["l"]),
                  float(d["c"]), float(d["v"]), int(d.get("n", 0)), int(d["t"]))


def asset_ctx(d: dict[str, Any], recv: int) -> list[Event]:
    c = d["ctx"]
    coin = d["coin"]
    out: list[Event] = []
    if c.get("markPx") is not None:
        oracle = float(c["oraclePx"]) if c.get("oraclePx") is not None else float("nan")
        out.append(MarkPrice(recv, recv, coin, float(c["markPx"]), oracle))
    return out


def funding_history(rows: list[dict[str, Any]], recv: int) -> list[FundingRate]:
    return [FundingRate(int(r["time"]), recv, r["coin"], float(r["fundingRate"]), float(r.get("premium", 0.0)))
            for r in rows]


def fill(f: dict[str, Any], recv: int) -> Fill:
    crossed = bool(f.get("crossed", True))
    return Fill(int(f["time"]), recv, f["coin"], f.get("cloid") or "", int(f["oid"]), side(f["side"]),
                float(f["px"]), float(f["sz"]), float(f.get("fee", 0.0)), "taker" if crossed else "maker",
                int(f.get("tid", 0)), "", float(f.get("closedPnl", 0.0)))


def order_update(u: dict[str, Any], recv: int) -> OrderAck:
    o = u["order"]
    status = STATUS.get(u["status"])
    if status is None:
        status = OrderStatus.CANCELED if u["status"].endswith("Canceled") else OrderStatus.REJECTED
    orig, left = float(o.get("origSz", o["sz"])), float(o["sz"])
    return OrderAck(int(u.get("statusTimestamp", o.get("timestamp", recv))), recv, o.get("cloid") or "",
                    o["coin"], status, int(o["oid"]), max(orig - left, 0.0), 0.0,
                    "" if status != OrderStatus.REJECTED else u["status"])


def user_funding(f: dict[str, Any], recv: int) -> FundingPayment:
    return FundingPayment(int(f["time"]), recv, f["coin"], float(f["fundingRate"]), float(f["szi"]),
                          float("nan"), float(f["usdc"]))
