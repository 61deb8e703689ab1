"""Signed exchange client for an agent (API) wallet trading for a master account.

Every action: rounded to the asset's tick and lot, signed for the chain of
the endpoint it goes to (``endpoints.is_mainnet_url``: anything not loopback
and not the testnet host is mainnet), with a fresh nonce from the client's
``NonceSource`` (per process, or shared by router replicas through Redis),
charged to the IP weight budget (``1 + floor(batch/40)``) and the address
budget, and sent with ``expiresAfter`` so that a request stuck on the way
can never take effect after its expiry. Its reply is classified
(``errors.classify_reply``): accepted -> the response; rejected -> an
``ExchangeError`` with the exchange's code (``RateLimitError`` for 429);
unknown (timeout, 5xx, unreadable body) -> ``UnknownOutcomeError``, which
the caller resolves by looking the order up (``HyperliquidVenue``), never by
sending it again blindly.
"""

from __future__ import annotations

from typing import Any

import requests
from eth_account.signers.local import LocalAccount

from hlquant.core.assets import AssetSpec
from hlquant.core.errors import ExchangeError, RateLimitError
from hlquant.core.events import ErrorCode, OrderRequest, Side
from hlquant.hyperliquid.endpoints import MAINNET_URL, TESTNET_URL, Endpoints, is_mainnet_url
from hlquant.hyperliquid.errors import (
    ReplyKind,
    UnavailableError,
    UnknownOutcomeError,
    classify_reply,
)
from hlquant.hyperliquid.limits import AddressBudget, WeightLimiter, exchange_weight
from hlquant.hyperliquid.nonces import NonceManager, NonceSource
from hlquant.hyperliquid.signing import Signer, approve_agent_action
from hlquant.hyperliquid.wire import (
    order_action,
    order_to_wire,
    order_type_to_wire,
    request_to_wire,
)

GROUPINGS = ("na", "normalTpsl", "positionTpsl")
EXPIRY_MARGIN_MS = 5_000


class ExchangeClient:
    """``base_url`` is a URL or resolved ``Endpoints``; the signature chain always
    follows it. ``expires_after_ms``: each action is refused by the exchange if it
    arrives later than that after it was signed (default: the HTTP timeout + 5 s,
    so a request the client gave up on cannot land much later; 0 = no expiry)."""

    def __init__(self, signer: Signer, assets: dict[str, AssetSpec], base_url: str | Endpoints = TESTNET_URL,
                 limiter: WeightLimiter | None = None, nonces: NonceSource | None = None,
                 timeout: float = 10.0, vault_address: str | None = None,
                 market_slippage: float = 0.05, expires_after_ms: int | None = None) -> None:
        self.signer = signer
        self.assets = dict(assets)
        if isinstance(base_url, Endpoints):
            self.base_url = base_url.url.rstrip("/")
            self.is_mainnet = base_url.mainnet or is_mainnet_url(self.base_url)
        else:
            self.base_url = base_url.rstrip("/")
            self.is_mainnet = is_mainnet_url(self.base_url)
        self.limiter = limiter or WeightLimiter()
        self.nonces: NonceSource = nonces or NonceManager()
        self.timeout = timeout
        self.vault_address = vault_address
        self.market_slippage = market_slippage
        self.expires_after_ms = (int(timeout * 1000) + EXPIRY_MARGIN_MS if expires_after_ms is None
                                 else int(expires_after_ms))
        self.budget = AddressBudget()
        self.session = requests.Session()
        self.requests = 0
        self.last_expires_at: int | None = None  # expiry of the last action sent

    def __repr__(self) -> str:
        return f"ExchangeClient({self.base_url}, {self.signer!r})"

    # --- transport -------------------------------------------------------------
    def post_action(self, action: dict[str, Any], batch_len: int = 1,
                    signature: dict[str, Any] | None = None, nonce: int | None = None,
                    vault: bool = True) -> Any:
        """Sign (unless ``signature`` is given, for user-signed actions), send, classify."""
        self.limiter.acquire(exchange_weight(batch_len))
        vault_address = self.vault_address if vault else None
        if signature is None:
            nonce = self.nonces.next()
            expires = nonce + self.expires_after_ms if self.expires_after_ms else None
            signature = self.signer.sign_l1(action, nonce, self.is_mainnet, vault_address, expires)
        else:
            expires = None
        body: dict[str, Any] = {"action": action, "nonce": nonce, "signature": signature,
                                "vaultAddress": vault_address}
        if expires is not None:
            body["expiresAfter"] = expires
        self.last_expires_at = expires
        self.requests += 1
        self.budget.spend(batch_len)
        t = action["type"]
        try:
            r = self.session.post(self.base_url + "/exchange", json=body, timeout=self.timeout)
        except requests.ConnectTimeout as e:  # no connection was made: nothing was sent
            raise UnavailableError(f"{t}: cannot connect to {self.base_url}: {e}") from e
        except requests.ConnectionError as e:
            if _never_sent(e):
                raise UnavailableError(f"{t}: cannot connect to {self.base_url}: {e}") from e
            raise UnknownOutcomeError(f"{t}: connection lost: {e}") from e
        except requests.RequestException as e:  # read timeout, broken body...
            raise UnknownOutcomeError(f"{t}: no reply: {e}") from e
        reply = classify_reply(r.status_code, r.text)
        if reply.kind is ReplyKind.ACCEPTED:
            return reply.body
        if reply.code == ErrorCode.RATE_LIMITED and r.status_code == 429:
            self.limiter.penalize()
            raise RateLimitError(f"{t}: {reply.message}", 429)
        if reply.kind is ReplyKind.UNKNOWN:
            raise UnknownOutcomeError(f"{t}: {reply.message}", r.status_code)
        raise ExchangeError(f"{t}: {reply.message}" if r.status_code >= 400 else reply.message,
                            r.status_code if r.status_code >= 400 else None, reply.code)

    # --- orders ----------------------------------------------------------------------
    def _spec(self, symbol: str) -> AssetSpec:
        spec = self.assets.get(symbol)
        if spec is None:
            raise ExchangeError(f"unknown asset {symbol!r}", code=ErrorCode.UNKNOWN_ASSET)
        return spec

    def wire_price(self, req: OrderRequest, ref_px: float | None) -> float:
        """Limit price on the tick grid; a market order becomes an aggressive Ioc limit."""
        spec = self._spec(req.symbol)
        if req.px is not None:
            return spec.round_price(req.px)
        base = req.trigger_px if req.trigger_px is not None else ref_px
        if base is None or base != base:
            raise ExchangeError(f"market order on {req.symbol} needs a reference price",
                                code=ErrorCode.BAD_REQUEST)
        return spec.round_price(base * (1 + self.market_slippage * int(req.side)))

    def order_wires(self, orders: list[OrderRequest], ref_px: dict[str, float]) -> list[dict[str, Any]]:
        wires = []
        for o in orders:
            spec = self._spec(o.symbol)
            sz = spec.round_size(o.size)
            if sz <= 0:
                raise ExchangeError(f"{o.symbol}: size {o.size} rounds to zero lots", code=ErrorCode.INVALID_SIZE)
            o2 = o if sz == o.size else _with_size(o, sz)
            wires.append(request_to_wire(o2, spec.asset_id, self.wire_price(o2, ref_px.get(o.symbol))))
        return wires

    def place(self, orders: list[OrderRequest], ref_px: dict[str, float] | None = None,
              grouping: str = "na") -> list[Any]:
        """One signed ``order`` action; returns the exchange's status per order.
        ``grouping``: ``na``, ``normalTpsl`` (an entry then its tp/sl legs) or
        ``positionTpsl`` (tp/sl legs on the current position)."""
        if grouping not in GROUPINGS:
            raise ValueError(f"grouping must be one of {GROUPINGS}, not {grouping!r}")
        wires = self.order_wires(orders, ref_px or {})
        resp = self.post_action(order_action(wires, grouping), len(wires))
        return _statuses(resp, len(wires), "order")

    def cancel(self, cancels: list[tuple[str, int]]) -> list[Any]:
        action = {"type": "cancel", "cancels": [{"a": self._spec(s).asset_id, "o": int(oid)} for s, oid in cancels]}
        return _statuses(self.post_action(action, len(cancels)), len(cancels), "cancel")

    def cancel_by_cloid(self, cancels: list[tuple[str, str]]) -> list[Any]:
        action = {"type": "cancelByCloid",
                  "cancels": [{"asset": self._spec(s).asset_id, "cloid": c} for s, c in cancels]}
        return _statuses(self.post_action(action, len(cancels)), len(cancels), "cancelByCloid")

    def modify(self, oid_or_cloid: int | str, order: OrderRequest, ref_px: float | None = None) -> Any:
        wire = self.order_wires([order], {order.symbol: ref_px} if ref_px else {})[0]
        return self.post_action({"type": "modify", "oid": oid_or_cloid, "order": wire})

    def batch_modify(self, mods: list[tuple[int | str, OrderRequest]]) -> list[Any]:
        modifies = [{"oid": ident, "order": self.order_wires([o], {})[0]} for ident, o in mods]
        resp = self.post_action({"type": "batchModify", "modifies": modifies}, len(mods))
        return _statuses(resp, len(mods), "batchModify")

    def schedule_cancel(self, at_ms: int | None) -> None:
        action: dict[str, Any] = {"type": "scheduleCancel"}
        if at_ms is not None:
            action["time"] = int(at_ms)
        self.post_action(action)

    def update_leverage(self, symbol: str, leverage: int, cross: bool = True) -> None:
        self.post_action({"type": "updateLeverage", "asset": self._spec(symbol).asset_id,
                          "isCross": bool(cross), "leverage": int(leverage)})

    def update_isolated_margin(self, symbol: str, amount_usd: float) -> None:
        """Add (positive) or remove (negative) USDC margin of an isolated position. The
        wire amount ``ntli`` is in millionths of a USDC and must be exact."""
        ntli = round(amount_usd * 1e6)
        if abs(ntli - amount_usd * 1e6) >= 1e-3 or ntli == 0:
            raise ValueError(f"isolated margin amount {amount_usd!r} is not a non-zero multiple of 1e-6 USDC")
        self.post_action({"type": "updateIsolatedMargin", "asset": self._spec(symbol).asset_id,
                          "isBuy": True, "ntli": int(ntli)})

    def approve_agent(self, master: LocalAccount, agent_address: str, name: str = "") -> None:
        """Authorize ``agent_address`` to trade for ``master`` (signed by the master key,
        for this endpoint's chain). Needs the master key: run once, by hand, never in a
        trading process."""
        nonce = self.nonces.next()
        action, sig = approve_agent_action(master, agent_address, nonce, self.is_mainnet, name)
        self.post_action(action, signature=sig, nonce=nonce, vault=False)


def _never_sent(e: BaseException) -> bool:
    """A refused / unresolvable connection: the request never left."""
    text = repr(e)
    return any(s in text for s in ("NewConnectionError", "Connection refused", "NameResolutionError",
                                   "Failed to establish a new connection"))


def _statuses(resp: Any, n: int, what: str) -> list[Any]:
    try:
        st = resp["data"]["statuses"]
    except (KeyError, TypeError) as e:
        raise UnknownOutcomeError(f"{what}: reply without statuses: {str(resp)[:200]}") from e
    if not isinstance(st, list) or len(st) != n:
        raise UnknownOutcomeError(f"{what}: {len(st) if isinstance(st, list) else '?'} statuses for {n} requests")
    return st


def _with_size(o: OrderRequest, sz: float) -> OrderRequest:
    return OrderRequest(o.ts_exch, o.ts_recv, o.cloid, o.intent_id, o.agent, o.symbol, o.side, sz, o.px,
                        o.tif, o.reduce_only, o.trigger_px, o.tpsl)


def limit_wire(asset: int, side: Side, sz: float, px: float) -> dict[str, Any]:
    """A plain Gtc limit wire (used by tools and tests)."""
    return order_to_wire(asset, side == Side.BUY, sz, px, False, order_type_to_wire(None))


__all__ = ["MAINNET_URL", "ExchangeClient", "limit_wire"]
