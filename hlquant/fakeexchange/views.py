"""How the fake exchange renders an account: orders, fills, positions.

Everything here reads the SimVenue through its public methods
(``order_object``, ``open_order_objects``, ``account_state``, ``leverage``,
``mark_price``) and writes Hyperliquid's shapes: the frontend order
(``frontendOpenOrders``, ``orderStatus``, ``historicalOrders``), the basic
order (``openOrders``, ``orderUpdates``), fills with their ``dir``, and the
clearinghouse state with cross and isolated positions.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from hlquant.core.events import OrderStatus, Tif
from hlquant.fakeexchange.market import num, side_wire
from hlquant.venues.sim import SimOrder, SimVenue

STATUS_WIRE = {OrderStatus.OPEN: "open", OrderStatus.PENDING: "open", OrderStatus.FILLED: "filled",
               OrderStatus.CANCELED: "canceled", OrderStatus.TRIGGERED: "triggered",
               OrderStatus.REJECTED: "rejected", OrderStatus.MARGIN_CANCELED: "marginCanceled"}
TIF_NAME = {Tif.GTC: "Gtc", Tif.IOC: "Ioc", Tif.ALO: "Alo"}
HISTORY_POINTS = 20_000  # account-value samples kept per account (portfolio)


@dataclass
class Placed:
    """What the exchange remembers of an order beyond the venue's record."""

    timestamp: int
    limit_px: str  # the price as sent (trigger market orders carry their slippage price)
    status: str = ""
    status_ts: int = 0
    parent: int = 0  # a normalTpsl leg: the entry's oid
    sz: str = ""  # the remaining size last reported on orderUpdates


@dataclass
class Account:
    address: str
    venue: SimVenue
    fills: list[dict[str, Any]] = field(default_factory=list)
    fundings: list[dict[str, Any]] = field(default_factory=list)  # userFunding rows
    ledger: list[dict[str, Any]] = field(default_factory=list)  # userNonFundingLedgerUpdates rows
    placed: dict[int, Placed] = field(default_factory=dict)
    history: deque = field(default_factory=lambda: deque(maxlen=HISTORY_POINTS))  # (t, accountValue, pnl)
    n_requests: int = 0
    volume: float = 0.0
    over_budget_ms: int = 0  # wall time of the last request let through with the budget spent
    deposited: float = 0.0


def status_wire(o: SimOrder) -> str:
    return o.reason or STATUS_WIRE.get(o.status, "open")


def order_type_name(o: SimOrder) -> str:
    if o.req.trigger_px is None:
        return "Limit"
    kind = "Take Profit" if o.req.tpsl == "tp" else "Stop"
    return f"{kind} {'Market' if o.req.px is None else 'Limit'}"


def trigger_condition(o: SimOrder) -> str:
    """"Price above X" / "Price below X" as the exchange shows it ("N/A" for a plain
    order): a sell stop and a buy take-profit fire on the way down."""
    trig = o.req.trigger_px
    if trig is None:
        return "N/A"
    down = (o.sign < 0) == (o.req.tpsl != "tp")
    return f"Price {'below' if down else 'above'} {_trim(trig)}"


def _trim(x: float) -> str:
    s = num(x)
    return s[:-2] if s.endswith(".0") else s


def frontend_order(acct: Account, o: SimOrder, children: list[dict[str, Any]] | None = None,
                   with_cloid_null: bool = False) -> dict[str, Any]:
    p = acct.placed.get(o.oid)
    view: dict[str, Any] = {
        "children": children or [], "coin": o.req.symbol, "isPositionTpsl": o.group == "positionTpsl",
        "isTrigger": o.req.trigger_px is not None,
        "limitPx": p.limit_px if p else num(o.req.px or 0.0), "oid": o.oid,
        "orderType": order_type_name(o), "origSz": num(o.req.size), "reduceOnly": bool(o.req.reduce_only),
        "side": side_wire(o.req.side), "sz": num(o.remaining),
        "tif": TIF_NAME.get(o.req.tif) if o.req.trigger_px is None else None,
        "timestamp": p.timestamp if p else o.req.ts_exch,
        "triggerCondition": trigger_condition(o), "triggerPx": num(o.req.trigger_px or 0.0)}
    if o.req.cloid:
        view["cloid"] = o.req.cloid
    elif with_cloid_null:
        view["cloid"] = None
    return view


def basic_order(acct: Account, o: SimOrder) -> dict[str, Any]:
    p = acct.placed.get(o.oid)
    view = {"coin": o.req.symbol, "side": side_wire(o.req.side),
            "limitPx": p.limit_px if p else num(o.req.px or 0.0), "sz": num(o.remaining), "oid": o.oid,
            "timestamp": p.timestamp if p else o.req.ts_exch, "origSz": num(o.req.size)}
    if o.req.cloid:
        view["cloid"] = o.req.cloid
    return view


def open_orders(acct: Account, frontend: bool) -> list[dict[str, Any]]:
    """Newest first, as the exchange lists them; a normalTpsl entry carries its legs."""
    orders = sorted(acct.venue.open_order_objects(), key=lambda o: -o.oid)
    if not frontend:
        return [{k: v for k, v in basic_order(acct, o).items() if k != "origSz"} for o in orders]
    out = []
    for o in orders:
        legs = [acct.venue.order_object(i) for i in _legs_of(acct, o)]
        children = [frontend_order(acct, x) for x in legs if x is not None and x.is_live]
        out.append(frontend_order(acct, o, children))
    return out


def _legs_of(acct: Account, o: SimOrder) -> list[int]:
    return [oid for oid, p in acct.placed.items() if p.parent == o.oid]


def direction(start: float, side: int, sz: float) -> str:
    """The fill's ``dir``: Open/Close Long/Short, or "Long > Short" / "Short > Long" when
    the fill flips the position."""
    if start == 0 or (start > 0) == (side > 0):
        return "Open Long" if side > 0 else "Open Short"
    if sz > abs(start) + 1e-12:
        return "Long > Short" if start > 0 else "Short > Long"
    return "Close Short" if side > 0 else "Close Long"


def clearinghouse(acct: Account | None, now: int, mm_fraction: float) -> dict[str, Any]:
    zero = {"accountValue": "0.0", "totalNtlPos": "0.0", "totalRawUsd": "0.0", "totalMarginUsed": "0.0"}
    if acct is None:
        return {"assetPositions": [], "marginSummary": zero, "crossMarginSummary": zero,
                "crossMaintenanceMarginUsed": "0.0", "withdrawable": "0.0", "time": now}
    v = acct.venue
    st = v.account_state()
    positions = []
    ntl = signed_ntl = cross_ntl = cross_signed = cross_mm = 0.0
    for s, p in st.positions.items():
        mark = v.mark_price(s)
        ntl += abs(p.size) * mark
        signed_ntl += p.size * mark
        leverage: dict[str, Any] = {"type": p.leverage_type, "value": p.leverage}
        if p.leverage_type == "isolated":
            leverage["rawUsd"] = num(p.isolated_margin - p.size * p.entry_px)  # value = rawUsd + szi x mark
        else:
            cross_ntl += abs(p.size) * mark
            cross_signed += p.size * mark
            cross_mm += p.margin_used * mm_fraction
        positions.append({"type": "oneWay", "position": {
            "coin": s, "szi": num(p.size), "leverage": leverage, "entryPx": num(p.entry_px),
            "positionValue": num(abs(p.size) * mark), "unrealizedPnl": num(p.unrealized),
            "returnOnEquity": num(p.unrealized / p.margin_used if p.margin_used else 0.0),
            "liquidationPx": num(p.liquidation_px) if p.liquidation_px > 0 else None,
            "marginUsed": num(p.margin_used), "maxLeverage": v.assets()[s].max_leverage,
            "cumFunding": {"allTime": num(-p.cum_funding), "sinceOpen": num(-p.cum_funding),
                           "sinceChange": num(-p.cum_funding)}}})
    summary = {"accountValue": num(st.equity), "totalNtlPos": num(ntl),
               "totalRawUsd": num(st.equity - signed_ntl), "totalMarginUsed": num(st.margin_used)}
    cross = {"accountValue": num(st.cross_equity), "totalNtlPos": num(cross_ntl),
             "totalRawUsd": num(st.cross_equity - cross_signed), "totalMarginUsed": num(st.cross_margin_used)}
    return {"marginSummary": summary, "crossMarginSummary": cross,
            "crossMaintenanceMarginUsed": num(cross_mm), "withdrawable": num(st.withdrawable),
            "assetPositions": positions, "time": now}
