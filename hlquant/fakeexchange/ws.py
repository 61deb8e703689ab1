"""The fake exchange's WebSocket ``/ws``: subscriptions, snapshots, pushes, posts.

A first plain-text frame ``Websocket connection established.``; ``ping`` ->
``pong``; ``subscriptionResponse`` for every (un)subscribe; a snapshot on
subscribe where the exchange sends one (user fills and fundings with
``isSnapshot``, the book, the BBO, the asset context, mids, the account
views); ``post`` requests answered like REST. The BBO and the asset context
stream on every market change of their coin, derived from the book and the
context even when the replayed data has no BBO or mark events.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import WSMsgType, web

from hlquant.fakeexchange.market import num
from hlquant.fakeexchange.views import clearinghouse, open_orders

USER_CHANNELS = ("userFills", "userFundings", "orderUpdates", "userEvents", "userNonFundingLedgerUpdates",
                 "webData2")
COIN_CHANNELS = ("l2Book", "trades", "bbo", "activeAssetCtx")
CTX_INTERVAL_S = 0.25


def identifier(sub: dict[str, Any]) -> str | None:
    t = sub.get("type")
    coin = str(sub.get("coin", "")).lower()
    user = str(sub.get("user", "")).lower()
    if t == "allMids":
        return "allMids"
    if t in COIN_CHANNELS and coin:
        return f"{t}:{coin}"
    if t == "candle" and coin:
        return f"candle:{coin},{sub.get('interval', '1m')}"
    if t in USER_CHANNELS and user:
        return f"{t}:{user}"
    if t == "activeAssetData" and coin and user:
        return f"activeAssetData:{coin},{user}"
    return None


async def safe_send(ws: web.WebSocketResponse, msg: str) -> None:
    try:
        await ws.send_str(msg)
    except (ConnectionError, RuntimeError):
        pass


class WsMixin:
    """Part of ``FakeExchange``: the WebSocket endpoint."""

    def subscribed(self, ident: str) -> bool:
        return any(ident in subs for subs in self._subs.values())

    def _broadcast(self, channel: str, data: Any, ident: str) -> None:
        if not self._ws:
            return
        msg = None
        for ws, subs in list(self._subs.items()):
            if ident in subs and not ws.closed:
                msg = msg or json.dumps({"channel": channel, "data": data})
                self.counters["ws_sent"] += 1
                asyncio.ensure_future(safe_send(ws, msg))

    def _push_ctx(self, symbol: str) -> None:
        """The asset context streams on market changes of its coin, at most every
        ``CTX_INTERVAL_S`` (the exchange sends it about once per block, not per trade)."""
        ident = f"activeAssetCtx:{symbol.lower()}"
        if not self._ws or not self.subscribed(ident):
            return
        now = time.monotonic()
        if now - self._ctx_sent.get(symbol, -1e9) < CTX_INTERVAL_S:
            self._ctx_dirty.add(symbol)  # sent by the timer once the interval has passed
            return
        self._ctx_sent[symbol] = now
        self._ctx_dirty.discard(symbol)
        self._broadcast("activeAssetCtx", {"coin": symbol, "ctx": self.market.asset_ctx(
            symbol, self.open_interest(symbol))}, ident)

    def _push_account(self, acct) -> None:
        u = acct.address
        if not self._ws:
            return
        if self.subscribed(f"webData2:{u}"):
            self._broadcast("webData2", self._web_data(acct), f"webData2:{u}")
        for s in acct.venue.assets():
            ident = f"activeAssetData:{s.lower()},{u}"
            if self.subscribed(ident):
                self._broadcast("activeAssetData", self._asset_data(acct, s), ident)

    def _web_data(self, acct) -> dict[str, Any]:
        now = self.clock.now_ms()
        return {"clearinghouseState": clearinghouse(acct, now, self.venue_config.maintenance_margin_fraction),
                "openOrders": open_orders(acct, frontend=True) if acct else [],
                "meta": {"universe": self.universe}, "assetCtxs": [
                    self.market.asset_ctx(a["name"], self.open_interest(a["name"])) for a in self.universe],
                "serverTime": now, "user": acct.address if acct else ""}

    def _asset_data(self, acct, coin: str) -> dict[str, Any]:
        v = acct.venue
        kind, lev = v.leverage(coin)
        mark = v.mark_price(coin)
        free = v.withdrawable()
        max_sz = free * lev / mark if mark == mark and mark > 0 else 0.0
        spec = v.assets()[coin]
        lv: dict[str, Any] = {"type": kind, "value": lev}
        if kind == "isolated":
            st = v.account_state().positions.get(coin)
            lv["rawUsd"] = num(st.isolated_margin - st.size * st.entry_px) if st else "0.0"
        return {"user": acct.address, "coin": coin, "leverage": lv,
                "maxTradeSzs": [num(spec.round_size(max_sz))] * 2, "availableToTrade": [num(free)] * 2,
                "markPx": num(mark)}

    async def ws_handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._ws.add(ws)
        self._subs[ws] = {}
        self.counters["ws_connections"] += 1
        await ws.send_str("Websocket connection established.")
        try:
            while True:
                try:
                    msg = await ws.receive(timeout=self.idle_timeout_s)
                except TimeoutError:
                    self.counters["ws_idle_closed"] += 1
                    break
                if msg.type != WSMsgType.TEXT:
                    break
                await self._on_ws_message(ws, msg.data)
        finally:
            self._ws.discard(ws)
            self._subs.pop(ws, None)
            await ws.close()
        return ws

    async def _on_ws_message(self, ws: web.WebSocketResponse, text: str) -> None:
        try:
            m = json.loads(text)
            method = m.get("method")
        except (ValueError, AttributeError):
            await ws.send_str(json.dumps({"channel": "error", "data": f"Invalid message: {text[:100]}"}))
            return
        if method == "ping":
            await ws.send_str(json.dumps({"channel": "pong"}))
        elif method in ("subscribe", "unsubscribe"):
            sub = m.get("subscription") or {}
            ident = identifier(sub)
            if ident is None:
                await ws.send_str(json.dumps({"channel": "error", "data": f"Invalid subscription {sub}"}))
                return
            if method == "subscribe":
                self._subs[ws][ident] = sub
            else:
                self._subs[ws].pop(ident, None)
            await ws.send_str(json.dumps({"channel": "subscriptionResponse",
                                          "data": {"method": method, "subscription": sub}}))
            if method == "subscribe":
                await self._snapshot(ws, sub)
        elif method == "post":
            req = m.get("request") or {}
            payload = req.get("payload") or {}
            if req.get("type") == "info":
                status, body = await self._info(payload, "ws")
                rtype = "info" if status == 200 else "error"
            else:
                status, body = await self._exchange(payload, "ws")
                rtype = "action" if status == 200 else "error"
            await ws.send_str(json.dumps({"channel": "post", "data": {"id": m.get("id"),
                                          "response": {"type": rtype, "payload": body}}}))
        else:
            await ws.send_str(json.dumps({"channel": "error", "data": f"Unknown method {method!r}"}))

    async def _snapshot(self, ws: web.WebSocketResponse, sub: dict) -> None:
        t = sub.get("type")
        u = str(sub.get("user", "")).lower()
        coin = str(sub.get("coin", ""))
        acct = self.accounts.get(u)
        now = self.clock.now_ms()
        out: tuple[str, Any] | None = None
        if t == "userFills":
            out = ("userFills", {"isSnapshot": True, "user": u, "fills": acct.fills[-2000:] if acct else []})
        elif t == "userFundings":
            rows = [{**r["delta"], "time": r["time"]} for r in acct.fundings[-2000:]] if acct else []
            for r in rows:
                r.pop("type", None)
            out = ("userFundings", {"isSnapshot": True, "user": u, "fundings": rows})
        elif t == "userNonFundingLedgerUpdates":
            out = ("userNonFundingLedgerUpdates", {"isSnapshot": True, "user": u,
                                                   "nonFundingLedgerUpdates": acct.ledger if acct else []})
        elif t == "l2Book":
            book = self.market.l2_book(coin, now)
            out = ("l2Book", book) if book is not None else None
        elif t == "bbo":
            b = self.market.bbo(coin, now)
            out = ("bbo", b) if b is not None else None
        elif t == "activeAssetCtx" and coin in self.assets and self.market.mark(coin) > 0:
            # a listed coin always has a mark on the exchange; a replay that has not priced it
            # yet sends its context with the first price (never a context of zeros)
            out = ("activeAssetCtx", {"coin": coin, "ctx": self.market.asset_ctx(coin, self.open_interest(coin))})
        elif t == "allMids":
            out = ("allMids", {"mids": self.market.all_mids()})
        elif t == "webData2" and acct is not None:
            out = ("webData2", self._web_data(acct))
        elif t == "activeAssetData" and acct is not None and coin in self.assets:
            out = ("activeAssetData", self._asset_data(acct, coin))
        if out is not None:
            await ws.send_str(json.dumps({"channel": out[0], "data": out[1]}))

    async def send_raw(self, text: str) -> int:
        """Send a raw frame to every WebSocket (malformed-message tests)."""
        for ws in list(self._ws):
            await safe_send(ws, text)
        return len(self._ws)

    async def drop_connections(self) -> int:
        """Close every WebSocket (clients must reconnect and resubscribe)."""
        n = 0
        for ws in list(self._ws):
            await ws.close(code=1012, message=b"fake exchange: connection dropped")
            n += 1
        self.counters["ws_dropped"] += n
        return n
