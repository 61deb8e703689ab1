"""Signed exchange client for an agent (API) wallet trading for a master account.

Every action: rounded to the asset's tick and lot, signed with a fresh
strictly-increasing nonce, charged to the IP weight budget
(``1 + floor(batch/40)``) and the address budget, and its answer mapped to
per-order results or a clear ``ExchangeError`` carrying the exchange's own
message. A request that times out is *not* blindly retried: the caller asks
``order_status`` by cloid first (see ``HyperliquidVenue``).
"""

from __future__ import annotations

from typing import Any

import requests

from hlquant.core.assets import AssetSpec
from hlquant.core.errors import ExchangeError, RateLimitError
from hlquant.core.events import OrderRequest, Side
from hlquant.hyperliquid.info import TESTNET_URL
from hlquant.hyperliquid.limits import AddressBudget, WeightLimiter, exchange_weight
from hlquant.hyperliquid.signing import NonceManager, Signer
from hlquant.hyperliquid.wire import (
    order_action,
    order_to_wire,
    order_type_to_wire,
    request_to_wire,
)

MAINNET_URL = "https://api.hyperliquid.xyz"


class ExchangeClient:
    def __init__(self, signer: Signer, assets: dict[str, AssetSpec], base_url: str = TESTNET_URL,
                 limiter: WeightLimiter | None = None, nonces: NonceManager | None = None,
                 timeout: float = 10.0, vault_address: str | None = None,
                 market_slippage: float = 0.05) -> None:
        self.signer = signer
        self.assets = dict(assets)
        self.base_url = base_url.rstrip("/")
        self.is_mainnet = self.base_url == MAINNET_URL
        self.limiter = limiter or WeightLimiter()
        self.nonces = nonces or NonceManager()
        self.timeout = timeout
        self.vault_address = vault_address
        self.market_slippage = market_slippage
        self.budget = AddressBudget()
        self.session = requests.Session()
        self.requests = 0

    def __repr__(self) -> str:
        return f"ExchangeClient({self.base_url}, {self.signer!r})"

    # --- transport -------------------------------------------------------------
    def post_action(self, action: dict[str, Any], batch_len: int = 1) -> dict[str, Any]:
        self.limiter.acquire(exchange_weight(batch_len))
        nonce = self.nonces.next()
        sig = self.signer.sign_l1(action, nonce, self.is_mainnet, self.vault_address)
        body = {"action": action, "nonce": nonce, "signature": sig, "vaultAddress": self.vault_address}
        self.requests += 1
        self.budget.spend(batch_len)
        r = self.session.post(self.base_url + "/exchange", json=body, timeout=self.timeout)
        if r.status_code == 429:
            self.limiter.penalize()
            raise RateLimitError(f"{action['type']}: rate limited (429)", 429)
        if r.status_code >= 400:
            raise ExchangeError(f"{action['type']}: HTTP {r.status_code}: {r.text[:300]}", r.status_code)
        out = r.json()
        if out.get("status") != "ok":
            raise ExchangeError(f"{action['type']}: {out.get('response')}")
        return out["response"]

    # --- orders ----------------------------------------------------------------------
    def _spec(self, symbol: str) -> AssetSpec:
        spec = self.assets.get(symbol)
        if spec is None:
            raise ExchangeError(f"unknown asset {symbol!r}")
        return spec

    def wire_price(self, req: OrderRequest, ref_px: float | None) -> float:
        """Limit price on the tick grid; a market order becomes an aggressive Ioc limit."""
        spec = self._spec(req.symbol)
        if req.px is not None:
            return spec.round_price(req.px)
        base = req.trigger_px if req.trigger_px is not None else ref_px
        if base is None or base != base:
            raise ExchangeError(f"market order on {req.symbol} needs a reference price")
        return spec.round_price(base * (1 + self.market_slippage * int(req.side)))

    def order_wires(self, orders: list[OrderRequest], ref_px: dict[str, float]) -> list[dict[str, Any]]:
        wires = []
        for o in orders:
            spec = self._spec(o.symbol)
            sz = spec.round_size(o.size)
            if sz <= 0:
                raise ExchangeError(f"{o.symbol}: size {o.size} rounds to zero lots")
            o2 = o if sz == o.size else _with_size(o, sz)
            wires.append(request_to_wire(o2, spec.asset_id, self.wire_price(o2, ref_px.get(o.symbol))))
        return wires

    def place(self, orders: list[OrderRequest], ref_px: dict[str, float] | None = None) -> list[dict[str, Any]]:
        """One signed ``order`` action; returns the exchange's status per order."""
        wires = self.order_wires(orders, ref_px or {})
        resp = self.post_action(order_action(wires), len(wires))
        return resp["data"]["statuses"]

    def cancel(self, cancels: list[tuple[str, int]]) -> list[Any]:
        action = {"type": "cancel", "cancels": [{"a": self._spec(s).asset_id, "o": int(oid)} for s, oid in cancels]}
        return self.post_action(action, len(cancels))["data"]["statuses"]

    def cancel_by_cloid(self, cancels: list[tuple[str, str]]) -> list[Any]:
        action = {"type": "cancelByCloid",
                  "cancels": [{"asset": self._spec(s).asset_id, "cloid": c} for s, c in cancels]}
        return self.post_action(action, len(cancels))["data"]["statuses"]

    def modify(self, oid_or_cloid: int | str, order: OrderRequest, ref_px: float | None = None) -> dict[str, Any]:
        wire = self.order_wires([order], {order.symbol: ref_px} if ref_px else {})[0]
        return self.post_action({"type": "modify", "oid": oid_or_cloid, "order": wire})

    def batch_modify(self, mods: list[tuple[int | str, OrderRequest]]) -> list[Any]:
        modifies = [{"oid": ident, "order": self.order_wires([o], {})[0]} for ident, o in mods]
        return self.post_action({"type": "batchModify", "modifies": modifies}, len(mods))["data"]["statuses"]

    def schedule_cancel(self, at_ms: int | None) -> None:
        action: dict[str, Any] = {"type": "scheduleCancel"}
        if at_ms is not None:
            action["time"] = int(at_ms)
        self.post_action(action)

    def update_leverage(self, symbol: str, leverage: int, cross: bool = True) -> None:
        self.post_action({"type": "updateLeverage", "asset": self._spec(symbol).asset_id,
                          "isCross": bool(cross), "leverage": int(leverage)})


def _with_size(o: OrderRequest, sz: float) -> OrderRequest:
    return OrderRequest(o.ts_exch, o.ts_recv, o.cloid, o.intent_id, o.agent, o.symbol, o.side, sz, o.px,
                        o.tif, o.reduce_only, o.trigger_px, o.tpsl)


def limit_wire(asset: int, side: Side, sz: float, px: float) -> dict[str, Any]:
    """A plain Gtc limit wire (used by tools and tests)."""
    return order_to_wire(asset, side == Side.BUY, sz, px, False, order_type_to_wire(None))
