"""Hyperliquid wire formats: decimal strings, order wires, actions.

Numbers travel as canonical decimal strings (8 decimals max, trailing zeros
stripped); a float that would be changed by that rounding is refused rather
than silently moved, because a signed action hashes the exact string.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hlquant.core.events import OrderRequest, Side, Tif

_TIF = {Tif.GTC: "Gtc", Tif.IOC: "Ioc", Tif.ALO: "Alo"}
TIF_FROM_WIRE = {v: k for k, v in _TIF.items()}


_EIGHT = Decimal("1e-8")


def float_to_wire(x: float) -> str:
    """The decimal string of ``x``: its shortest round-trip form rounded to 8 decimals,
    trailing zeros stripped. The same string as the SDK's ``f"{x:.8f}"`` wherever that
    is exact; above ~1e8 the SDK's 8 fixed decimals exceed a double's precision and
    write 150722416.1 as "150722416.09999999" (off the lot grid), this does not."""
    d = Decimal(repr(float(x))).quantize(_EIGHT)
    if abs(float(d) - x) >= 1e-12:
        raise ValueError(f"float_to_wire would round {x!r}")
    s = f"{d.normalize():f}"
    return "0" if s in ("-0", "0") else s


def order_type_to_wire(tif: Tif | None, trigger: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"limit":{"tif":..}}`` or ``{"trigger":{"isMarket","triggerPx","tpsl"}}``."""
    if trigger is not None:
        return {"trigger": {"isMarket": bool(trigger["isMarket"]),
                            "triggerPx": float_to_wire(float(trigger["triggerPx"])),
                            "tpsl": trigger["tpsl"]}}
    return {"limit": {"tif": _TIF[tif or Tif.GTC]}}


def order_to_wire(asset: int, is_buy: bool, sz: float, px: float, reduce_only: bool,
                  order_type: dict[str, Any], cloid: str | None = None) -> dict[str, Any]:
    w: dict[str, Any] = {"a": asset, "b": is_buy, "p": float_to_wire(px), "s": float_to_wire(sz),
                         "r": reduce_only, "t": order_type}
    if cloid:
        w["c"] = cloid
    return w


def request_to_wire(req: OrderRequest, asset: int, px: float) -> dict[str, Any]:
    """A core OrderRequest as an order wire (``px`` already tick-rounded; market
    orders are sent as aggressive Ioc limits, as the exchange has no market type)."""
    trigger = None
    if req.trigger_px is not None:
        trigger = {"isMarket": req.px is None, "triggerPx": req.trigger_px, "tpsl": req.tpsl or "sl"}
    return order_to_wire(asset, req.side == Side.BUY, req.size, px, req.reduce_only,
                         order_type_to_wire(req.tif, trigger), req.cloid or None)


def order_action(orders: list[dict[str, Any]], grouping: str = "na") -> dict[str, Any]:
    return {"type": "order", "orders": orders, "grouping": grouping}
