"""A fake Hyperliquid exchange that speaks the real wire protocol on loopback.

``POST /info``, ``POST /exchange`` and the WebSocket ``/ws`` answer in the
exact shapes Hyperliquid uses, so the official SDK and hlquant's own clients
can be tested offline. It authenticates like the exchange (recovers the
signer of each action and maps an approved agent to its master account),
enforces the nonce window and replay rule, the per-IP weight budget (HTTP
429), tick/lot/min-value rules, and matches orders with the SimVenue (one per
account, all fed the same market data). Market data is replayed from
``MarketData`` with its timestamps rebased to now, or pushed by tests with
``publish``. Fault hooks reproduce what breaks clients in production: dropped
connections, a reply lost after the order was accepted, a fill racing a
modify.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from hlquant.core.assets import DEFAULT_ASSETS, AssetSpec
from hlquant.core.events import (
    BBO,
    BookSnapshot,
    CancelAck,
    CancelRequest,
    Candle,
    Event,
    Fill,
    FundingPayment,
    FundingRate,
    MarkPrice,
    OrderAck,
    OrderRequest,
    OrderStatus,
    Side,
    Tif,
    Trade,
)
from hlquant.fakeexchange.market import MarketState, build_universe, num, side_wire
from hlquant.hyperliquid.signing import (
    APPROVE_AGENT_TYPES,
    recover_l1_signer,
    recover_user_signed_signer,
)
from hlquant.hyperliquid.wire import TIF_FROM_WIRE
from hlquant.venues.sim import SimVenue, SimVenueConfig

log = logging.getLogger(__name__)

NONCE_PAST_MS = 2 * 86_400_000
NONCE_FUTURE_MS = 86_400_000
NONCES_KEPT = 100
IP_WEIGHT_PER_MIN = 1200
INFO_WEIGHT_2 = {"l2Book", "allMids", "clearinghouseState", "orderStatus", "spotClearinghouseState",
                 "exchangeStatus"}
USER_FILLS_CAP = 2000
STATUS_WIRE = {OrderStatus.OPEN: "open", OrderStatus.FILLED: "filled", OrderStatus.CANCELED: "canceled",
               OrderStatus.TRIGGERED: "triggered", OrderStatus.REJECTED: "rejected",
               OrderStatus.MARGIN_CANCELED: "marginCanceled", OrderStatus.PENDING: "open"}


class WallMs:
    """The exchange's clock (ms); tests may replace ``offset`` to shift time, or ``pin`` it
    to the replayed events' time (lockstep drills: fills stamped exactly as in a backtest)."""

    def __init__(self) -> None:
        self.offset = 0
        self.pinned: int | None = None

    def pin(self, t_ms: int | None) -> None:
        self.pinned = t_ms

    def now_ms(self) -> int:
        """Market time: what the venues match, fill and stamp at."""
        if self.pinned is not None:
            return self.pinned
        return int(time.time() * 1000) + self.offset

    def wall_ms(self) -> int:
        """Protocol time (nonce windows, expiries): never pinned, as signers use real time."""
        return int(time.time() * 1000) + self.offset


@dataclass
class Faults:
    """Switches tests flip to reproduce production failures."""

    drop_next_order_reply: int = 0  # accept the next N order actions, then drop the HTTP reply
    reply_delay_s: float = 0.0
    fill_before_next_modify: bool = False  # a fill lands on the old oid while the modify is in flight
    weight_per_min: int = IP_WEIGHT_PER_MIN


@dataclass
class Account:
    address: str
    venue: SimVenue
    fills: list[dict[str, Any]] = field(default_factory=list)
    fundings: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)  # oid -> order wire view
    statuses: dict[int, tuple[str, int]] = field(default_factory=dict)  # oid -> (status, ts)
    n_requests: int = 0
    volume: float = 0.0


class _WeightBucket:
    def __init__(self) -> None:
        self.events: deque[tuple[float, int]] = deque()
        self.total = 0

    def take(self, w: int, cap: int) -> bool:
        now = time.monotonic()
        while self.events and now - self.events[0][0] >= 60.0:
            self.total -= self.events.popleft()[1]
        if self.total + w > cap:
            return False
        self.events.append((now, w))
        self.total += w
        return True


class FakeExchange:
    """The server's state and handlers; ``app()`` gives the aiohttp application."""

    def __init__(
        self,
        assets: dict[str, AssetSpec] | None = None,
        *,
        accounts: dict[str, float] | None = None,
        agents: dict[str, str] | None = None,
        venue_config: SimVenueConfig | None = None,
        is_mainnet: bool = False,
        idle_timeout_s: float = 60.0,
    ) -> None:
        self.assets = dict(assets or DEFAULT_ASSETS)
        self.by_id = {a.asset_id: s for s, a in self.assets.items()}
        self.universe = build_universe(self.assets)
        self.clock = WallMs()
        self.venue_config = venue_config or SimVenueConfig(latency_ms=0)
        self.is_mainnet = is_mainnet
        self.idle_timeout_s = idle_timeout_s
        self.market = MarketState(self.assets)
        self.accounts: dict[str, Account] = {}
        self.agents: dict[str, str] = {}  # agent address (lower) -> master (lower)
        self.nonces: dict[str, list[int]] = defaultdict(list)
        self.weights: dict[str, _WeightBucket] = defaultdict(_WeightBucket)
        self.faults = Faults()
        self.counters: dict[str, int] = defaultdict(int)
        self.orders_received: list[dict[str, Any]] = []  # every order wire accepted onto a venue
        self.order_hooks: list[Any] = []  # callables(wire, perf_counter_ns) when an order request arrives
        self._ws: set[web.WebSocketResponse] = set()
        self._subs: dict[web.WebSocketResponse, dict[str, dict]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        for addr, cash in (accounts or {}).items():
            self.add_account(addr, cash)
        for agent, master in (agents or {}).items():
            self.agents[agent.lower()] = master.lower()

    # ------------------------------------------------------------------ accounts
    def add_account(self, address: str, cash: float = 100_000.0) -> Account:
        a = address.lower()
        if a not in self.accounts:
            cfg = SimVenueConfig(**{**self.venue_config.__dict__, "initial_cash": float(cash)})
            venue = SimVenue(self.assets, cfg, clock=self.clock, account=a)
            acct = Account(a, venue)
            venue.add_listener(lambda ev, acct=acct: self._on_venue_event(acct, ev))
            self.accounts[a] = acct
        return self.accounts[a]

    def approve_agent(self, agent: str, master: str) -> None:
        self.add_account(master)
        self.agents[agent.lower()] = master.lower()

    # ------------------------------------------------------------------ market data
    def publish(self, ev: Event) -> None:
        """Feed one market event to every account's venue and to WS subscribers.

        Call from the server's loop, or from any thread (it is scheduled there)."""
        if self._loop is not None and self._loop.is_running():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not self._loop:
                fut = asyncio.run_coroutine_threadsafe(self._publish_async(ev), self._loop)
                fut.result(timeout=10)
                return
        self._publish_now(ev)

    async def _publish_async(self, ev: Event) -> None:
        self._publish_now(ev)

    def _publish_now(self, ev: Event) -> None:
        self.counters["market_events"] += 1
        m = self.market
        venues = [a.venue for a in self.accounts.values()]
        if isinstance(ev, Trade):
            msgs = m.on_trade(ev)
            for v in venues:
                v.on_trade(ev.symbol, ev.ts_exch, int(ev.side), ev.px, ev.sz)
        elif isinstance(ev, BookSnapshot):
            msgs = m.on_book(ev)
            import numpy as np

            bp = np.array([p for p, _ in ev.bids], float)
            bs = np.array([s for _, s in ev.bids], float)
            ap = np.array([p for p, _ in ev.asks], float)
            as_ = np.array([s for _, s in ev.asks], float)
            for v in venues:
                v.on_book(ev.symbol, ev.ts_exch, bp, bs, ap, as_)
        elif isinstance(ev, BBO):
            msgs = m.on_bbo(ev)
            for v in venues:
                v.on_bbo(ev.symbol, ev.ts_exch, ev.bid_px, ev.bid_sz, ev.ask_px, ev.ask_sz)
        elif isinstance(ev, Candle):
            msgs = m.on_candle(ev)
            for v in venues:
                v.on_candle(ev.symbol, ev.ts_exch, ev.open, ev.high, ev.low, ev.close, ev.volume)
        elif isinstance(ev, FundingRate):
            msgs = m.on_funding(ev)
            for v in venues:
                v.on_funding(ev.symbol, ev.ts_exch, ev.rate, ev.oracle_px)
        elif isinstance(ev, MarkPrice):
            msgs = m.on_mark(ev)
            for v in venues:
                v.on_mark(ev.symbol, ev.ts_exch, ev.mark_px)
        else:
            raise TypeError(f"not a market event: {type(ev).__name__}")
        for channel, data, ident in msgs:
            self._broadcast(channel, data, ident)

    async def replay(self, events, speed: float = 1.0, rebase: bool = True,
                     stop: asyncio.Event | None = None) -> int:
        """Stream historical events; ``speed`` x real time (0 = as fast as possible).
        With ``rebase`` the timestamps are shifted so the first event is 'now'."""
        n = 0
        t_wall0 = self.clock.now_ms()
        t_data0 = None
        for ev in events:
            if stop is not None and stop.is_set():
                break
            if t_data0 is None:
                t_data0 = ev.ts_exch
            if speed > 0:
                due = t_wall0 + (ev.ts_exch - t_data0) / speed
                delay = (due - self.clock.now_ms()) / 1000.0
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                if n % 200 == 0:
                    await asyncio.sleep(0)
            if rebase:
                shift = t_wall0 - t_data0
                ev.ts_exch += shift
                ev.ts_recv += shift
                if isinstance(ev, Candle) and ev.ts_open:
                    ev.ts_open += shift
            self._publish_now(ev)
            n += 1
        return n

    # ------------------------------------------------------------------ venue events -> user channels
    def _on_venue_event(self, acct: Account, ev: Event) -> None:
        u = acct.address
        if isinstance(ev, Fill):
            pos_after = acct.venue._pos[ev.symbol].size
            start = pos_after - int(ev.side) * ev.sz
            f = {"coin": ev.symbol, "px": num(ev.px), "sz": num(ev.sz), "side": side_wire(ev.side),
                 "time": ev.ts_exch, "startPosition": num(start), "dir": _direction(start, int(ev.side)),
                 "closedPnl": num(ev.closed_pnl), "hash": "0x" + f"{ev.tid:064x}", "oid": ev.oid,
                 "crossed": ev.liquidity != "maker", "fee": num(ev.fee), "tid": ev.tid, "feeToken": "USDC"}
            if ev.cloid:
                f["cloid"] = ev.cloid
            acct.fills.append(f)
            acct.volume += ev.px * ev.sz
            self._broadcast("userFills", {"user": u, "fills": [f]}, f"userFills:{u}")
            self._broadcast("user", {"fills": [f]}, f"userEvents:{u}")
        elif isinstance(ev, OrderAck):
            self._order_update(acct, ev.oid, STATUS_WIRE.get(ev.status, "open"), ev.ts_exch)
        elif isinstance(ev, CancelAck):
            if ev.ok:
                self._order_update(acct, ev.oid, "canceled", ev.ts_exch)
        elif isinstance(ev, FundingPayment):
            fu = {"time": ev.ts_exch, "coin": ev.symbol, "usdc": num(ev.amount), "szi": num(ev.position),
                  "fundingRate": num(ev.rate)}
            acct.fundings.append(fu)
            self._broadcast("userFundings", {"user": u, "fundings": [fu]}, f"userFundings:{u}")
            self._broadcast("user", {"funding": {**fu, "nSamples": None}}, f"userEvents:{u}")

    def _order_update(self, acct: Account, oid: int, status: str, ts: int) -> None:
        view = acct.orders.get(oid)
        if view is None:
            return
        acct.statuses[oid] = (status, ts)
        o = acct.venue._orders.get(oid)
        if o is not None:
            view["sz"] = num(o.remaining)
        self._broadcast("orderUpdates", [{"order": dict(view), "status": status, "statusTimestamp": ts}],
                        f"orderUpdates:{acct.address}")

    # ------------------------------------------------------------------ websocket
    def _broadcast(self, channel: str, data: Any, ident: str) -> None:
        if not self._ws:
            return
        msg = None
        for ws, subs in list(self._subs.items()):
            if ident in subs and not ws.closed:
                msg = msg or json.dumps({"channel": channel, "data": data})
                self.counters["ws_sent"] += 1
                asyncio.ensure_future(_safe_send(ws, msg))

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
            ident = _identifier(sub)
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
        acct = self.accounts.get(u)
        if t == "userFills":
            fills = acct.fills[-USER_FILLS_CAP:] if acct else []
            await ws.send_str(json.dumps({"channel": "userFills",
                                          "data": {"isSnapshot": True, "user": u, "fills": fills}}))
        elif t == "userFundings":
            fu = acct.fundings[-USER_FILLS_CAP:] if acct else []
            await ws.send_str(json.dumps({"channel": "userFundings",
                                          "data": {"isSnapshot": True, "user": u, "fundings": fu}}))
        elif t == "l2Book":
            book = self.market.l2_book(sub.get("coin", ""), self.clock.now_ms())
            if book is not None:
                await ws.send_str(json.dumps({"channel": "l2Book", "data": book}))

    async def send_raw(self, text: str) -> int:
        """Send a raw frame to every WebSocket (malformed-message tests)."""
        for ws in list(self._ws):
            await _safe_send(ws, text)
        return len(self._ws)

    async def drop_connections(self) -> int:
        """Close every WebSocket (clients must reconnect and resubscribe)."""
        n = 0
        for ws in list(self._ws):
            await ws.close(code=1012, message=b"fake exchange: connection dropped")
            n += 1
        self.counters["ws_dropped"] += n
        return n

    # ------------------------------------------------------------------ http
    async def info_handler(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "Failed to deserialize the JSON body"}, status=422)
        status, out = await self._info(body, request.remote or "?")
        if status == 429:
            return web.Response(status=429, text="null", content_type="application/json")
        if self.faults.reply_delay_s:
            await asyncio.sleep(self.faults.reply_delay_s)
        return web.json_response(out, status=status)

    async def exchange_handler(self, request: web.Request) -> web.StreamResponse:
        t_arrival = time.perf_counter_ns()
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "Failed to deserialize the JSON body"}, status=422)
        if self.order_hooks and (body.get("action") or {}).get("type") == "order":
            for hook in self.order_hooks:  # latency probes: the moment the request arrived
                for w in body["action"].get("orders", []):
                    hook(w, t_arrival)
        status, out = await self._exchange(body, request.remote or "?")
        if status == 429:
            return web.Response(status=429, text="null", content_type="application/json")
        action_type = (body.get("action") or {}).get("type")
        if self.faults.drop_next_order_reply and action_type == "order" and status == 200:
            self.faults.drop_next_order_reply -= 1
            self.counters["replies_dropped"] += 1
            if request.transport is not None:
                request.transport.close()  # the order is on the book; the client never hears
            return web.Response(status=200)
        if self.faults.reply_delay_s:
            await asyncio.sleep(self.faults.reply_delay_s)
        return web.json_response(out, status=status)

    def _charge(self, ip: str, w: int) -> bool:
        ok = self.weights[ip].take(w, self.faults.weight_per_min)
        if not ok:
            self.counters["rate_limited"] += 1
        return ok

    async def _info(self, body: dict, ip: str) -> tuple[int, Any]:
        t = body.get("type")
        self.counters[f"info:{t}"] += 1
        if not self._charge(ip, 2 if t in INFO_WEIGHT_2 else 20):
            return 429, None
        now = self.clock.now_ms()
        m = self.market
        user = str(body.get("user", "")).lower()
        acct = self.accounts.get(user)
        if t == "meta":
            return 200, {"universe": self.universe}
        if t == "spotMeta":
            return 200, {"universe": [], "tokens": []}
        if t == "metaAndAssetCtxs":
            ctxs = [m.asset_ctx(a["name"]) for a in self.universe]
            return 200, [{"universe": self.universe}, ctxs]
        if t == "allMids":
            return 200, {s: num(p) for s, p in m.mids.items()}
        if t == "l2Book":
            return 200, m.l2_book(body.get("coin", ""), now)
        if t == "candleSnapshot":
            r = body.get("req") or {}
            return 200, m.candle_snapshot(r.get("coin", ""), r.get("interval", "1m"),
                                          int(r.get("startTime", 0)), int(r.get("endTime", now)))
        if t == "fundingHistory":
            return 200, m.funding_history(body.get("coin", ""), int(body.get("startTime", 0)),
                                          body.get("endTime"))
        if t == "clearinghouseState":
            return 200, self._clearinghouse(acct, now)
        if t in ("openOrders", "frontendOpenOrders"):
            return 200, self._open_orders(acct, frontend=t == "frontendOpenOrders")
        if t == "userFills":
            return 200, list(reversed(acct.fills[-USER_FILLS_CAP:])) if acct else []
        if t == "userFillsByTime":
            if not acct:
                return 200, []
            start, end = int(body.get("startTime", 0)), body.get("endTime")
            rows = [f for f in acct.fills if f["time"] >= start and (end is None or f["time"] <= int(end))]
            return 200, rows[:USER_FILLS_CAP]
        if t == "orderStatus":
            return 200, self._order_status(acct, body.get("oid"))
        if t == "userRateLimit":
            used = acct.n_requests if acct else 0
            vol = acct.volume if acct else 0.0
            return 200, {"cumVlm": num(vol), "nRequestsUsed": used, "nRequestsCap": 10_000 + int(vol)}
        return 422, {"error": f"Failed to deserialize the JSON body: unknown variant `{t}`"}

    def _clearinghouse(self, acct: Account | None, now: int) -> dict[str, Any]:
        if acct is None:
            zero = {"accountValue": "0.0", "totalNtlPos": "0.0", "totalRawUsd": "0.0", "totalMarginUsed": "0.0"}
            return {"assetPositions": [], "marginSummary": zero, "crossMarginSummary": zero,
                    "crossMaintenanceMarginUsed": "0.0", "withdrawable": "0.0", "time": now}
        st = acct.venue.account_state()
        positions = []
        ntl = 0.0
        for s, p in st.positions.items():
            mark = acct.venue.mark_price(s)
            ntl += abs(p.size) * mark
            positions.append({"type": "oneWay", "position": {
                "coin": s, "szi": num(p.size), "entryPx": num(p.entry_px),
                "positionValue": num(abs(p.size) * mark), "unrealizedPnl": num(p.unrealized),
                "returnOnEquity": num(p.unrealized / p.margin_used if p.margin_used else 0.0),
                "liquidationPx": num(p.liquidation_px) if p.liquidation_px > 0 else None,
                "marginUsed": num(p.margin_used), "maxTradeSzs": ["0", "0"],
                "leverage": {"type": "cross", "value": p.leverage},
                "cumFunding": {"allTime": num(-p.cum_funding), "sinceOpen": num(-p.cum_funding),
                               "sinceChange": num(-p.cum_funding)}}})
        summary = {"accountValue": num(st.equity), "totalNtlPos": num(ntl), "totalRawUsd": num(st.cash),
                   "totalMarginUsed": num(st.margin_used)}
        return {"assetPositions": positions, "marginSummary": summary, "crossMarginSummary": summary,
                "crossMaintenanceMarginUsed": num(st.margin_used * self.venue_config.maintenance_margin_fraction),
                "withdrawable": num(st.withdrawable), "time": now}

    def _open_orders(self, acct: Account | None, frontend: bool) -> list[dict[str, Any]]:
        if acct is None:
            return []
        out = []
        for o in sorted(acct.venue.open_order_objects(), key=lambda o: -o.oid):
            view = dict(acct.orders.get(o.oid) or {})
            view["sz"] = num(o.remaining)
            if not frontend:
                view = {k: view[k] for k in ("coin", "limitPx", "oid", "side", "sz", "timestamp")
                        if k in view} | ({"cloid": view["cloid"]} if "cloid" in view else {})
            out.append(view)
        return out

    def _order_status(self, acct: Account | None, oid: Any) -> dict[str, Any]:
        if acct is None:
            return {"status": "unknownOid"}
        if isinstance(oid, str):
            o_id = acct.venue._by_cloid.get(oid)
        else:
            o_id = int(oid) if oid is not None else None
        if o_id is None or o_id not in acct.orders:
            return {"status": "unknownOid"}
        status, ts = acct.statuses.get(o_id, ("open", acct.orders[o_id]["timestamp"]))
        o = acct.venue._orders.get(o_id)
        view = dict(acct.orders[o_id])
        if o is not None:
            view["sz"] = num(o.remaining)
        return {"status": "order", "order": {"order": view, "status": status, "statusTimestamp": ts}}

    # ------------------------------------------------------------------ exchange
    def _check_nonce(self, signer: str, nonce: int, now: int) -> str:
        if not now - NONCE_PAST_MS < nonce < now + NONCE_FUTURE_MS:
            return f"Invalid nonce: {nonce} is outside the allowed window"
        kept = self.nonces[signer]
        if nonce in kept:
            return "Invalid nonce: duplicate nonce"
        if len(kept) >= NONCES_KEPT and nonce <= kept[0]:
            return "Invalid nonce: nonce is too low"
        kept.append(nonce)
        kept.sort()
        if len(kept) > NONCES_KEPT:
            del kept[0]
        return ""

    async def _exchange(self, body: dict, ip: str) -> tuple[int, Any]:
        action = body.get("action") or {}
        t = action.get("type")
        self.counters[f"exchange:{t}"] += 1
        batch = len(action.get("orders") or action.get("cancels") or action.get("modifies") or [1])
        if not self._charge(ip, 1 + batch // 40):
            return 429, None
        nonce = body.get("nonce")
        sig = body.get("signature")
        if not isinstance(nonce, int) or not isinstance(sig, dict):
            return 422, {"error": "Failed to deserialize the JSON body: missing nonce or signature"}
        now = self.clock.wall_ms()
        vault = body.get("vaultAddress")
        expires = body.get("expiresAfter")
        try:
            if t == "approveAgent":
                signer = recover_user_signed_signer(action, APPROVE_AGENT_TYPES,
                                                    "HyperliquidTransaction:ApproveAgent", sig).lower()
            else:
                signer = recover_l1_signer(action, vault, nonce, expires, self.is_mainnet, sig).lower()
        except Exception as e:  # malformed signature values
            return 200, {"status": "err", "response": f"Invalid signature: {e}"}
        if expires is not None and int(expires) < now:
            return 200, {"status": "err", "response": f"Action expired at {expires} (now {now})"}
        if t == "approveAgent":
            if signer not in self.accounts:
                return 200, {"status": "err", "response": f"User {signer} does not exist."}
            err = self._check_nonce(signer, nonce, now)
            if err:
                return 200, {"status": "err", "response": err}
            self.approve_agent(str(action["agentAddress"]), signer)
            return 200, {"status": "ok", "response": {"type": "default"}}
        master = self.agents.get(signer) or (signer if signer in self.accounts else None)
        if master is None:
            self.counters["bad_signer"] += 1
            return 200, {"status": "err",
                         "response": f"User or API Wallet {signer} does not exist."}
        err = self._check_nonce(signer, nonce, now)
        if err:
            self.counters["bad_nonce"] += 1
            return 200, {"status": "err", "response": err}
        acct = self.accounts[str(vault).lower()] if vault and str(vault).lower() in self.accounts else self.accounts[master]
        acct.n_requests += batch
        async with self._lock:
            return 200, self._apply(acct, action, self.clock.now_ms())

    def _wire_to_request(self, w: dict[str, Any], now: int) -> tuple[OrderRequest | None, str]:
        sym = self.by_id.get(int(w.get("a", -1)))
        if sym is None:
            return None, f"Invalid asset {w.get('a')}"
        spec = self.assets[sym]
        px, sz = float(w["p"]), float(w["s"])
        if not spec.is_valid_size(sz) or sz <= 0:
            return None, "Order has invalid size."
        t = w.get("t") or {}
        trigger_px = tpsl = None
        tif = Tif.GTC
        limit: float | None = px
        if "trigger" in t:
            trg = t["trigger"]
            trigger_px, tpsl = float(trg["triggerPx"]), trg.get("tpsl")
            if trg.get("isMarket"):
                limit = None
        else:
            tif = TIF_FROM_WIRE.get((t.get("limit") or {}).get("tif", "Gtc"), Tif.GTC)
        if not spec.is_valid_price(px):
            return None, f"Price must be divisible by tick size. asset={spec.asset_id}"
        side = Side.BUY if w.get("b") else Side.SELL
        return OrderRequest(now, now, w.get("c") or "", "", "", sym, side, sz, limit, tif,
                            bool(w.get("r")), trigger_px, tpsl), ""

    def _status(self, acct: Account, ack: OrderAck, req: OrderRequest, w: dict[str, Any], now: int) -> dict:
        if ack.status == OrderStatus.REJECTED:
            return {"error": ack.error}
        spec = self.assets[req.symbol]
        view = {"coin": req.symbol, "side": side_wire(req.side), "limitPx": w["p"], "sz": w["s"],
                "oid": ack.oid, "timestamp": now, "origSz": w["s"], "triggerCondition": "N/A",
                "isTrigger": req.trigger_px is not None, "triggerPx": num(req.trigger_px or 0.0),
                "children": [], "isPositionTpsl": False, "reduceOnly": req.reduce_only,
                "orderType": _order_type_name(req), "tif": _TIF_NAME.get(req.tif) if req.trigger_px is None else None}
        if req.cloid:
            view["cloid"] = req.cloid
        acct.orders[ack.oid] = view
        self.orders_received.append({"account": acct.address, "oid": ack.oid, "cloid": req.cloid,
                                     "coin": req.symbol, "side": view["side"], "sz": w["s"], "px": w["p"]})
        if ack.status == OrderStatus.FILLED:
            self._order_update(acct, ack.oid, "filled", now)
            return {"filled": {"totalSz": num(ack.filled_sz), "avgPx": num(ack.avg_px), "oid": ack.oid}
                    | ({"cloid": req.cloid} if req.cloid else {})}
        if ack.oid not in acct.statuses:
            self._order_update(acct, ack.oid, "open", now)
        del spec
        return {"resting": {"oid": ack.oid} | ({"cloid": req.cloid} if req.cloid else {})}

    def _place(self, acct: Account, wires: list[dict[str, Any]], now: int) -> list[dict]:
        statuses: list[dict | None] = []
        reqs, idx = [], []
        for w in wires:
            req, err = self._wire_to_request(w, now)
            if req is None:
                statuses.append({"error": err})
            else:
                statuses.append(None)
                reqs.append((req, w))
                idx.append(len(statuses) - 1)
        if reqs:
            acks = acct.venue.submit([r for r, _ in reqs])
            for i, ack, (req, w) in zip(idx, acks, reqs, strict=True):
                statuses[i] = self._status(acct, ack, req, w, now)
        return [s for s in statuses if s is not None]

    def _apply(self, acct: Account, action: dict, now: int) -> dict[str, Any]:
        t = action.get("type")
        v = acct.venue
        if t == "order":
            return {"status": "ok", "response": {"type": "order",
                                                 "data": {"statuses": self._place(acct, action.get("orders", []), now)}}}
        if t in ("cancel", "cancelByCloid"):
            out = []
            for c in action.get("cancels", []):
                sym = self.by_id.get(int(c.get("a", c.get("asset", -1))), "")
                req = CancelRequest(now, now, sym, c.get("cloid", ""), int(c.get("o", 0) or 0), "user")
                ack = v.cancel([req])[0]
                if ack.ok:
                    self._order_update(acct, ack.oid, "canceled", now)
                out.append("success" if ack.ok else {"error": ack.error})
            return {"status": "ok", "response": {"type": "cancel", "data": {"statuses": out}}}
        if t in ("modify", "batchModify"):
            mods = action.get("modifies") if t == "batchModify" else [action]
            statuses = [self._modify(acct, m, now) for m in mods]
            if t == "modify":
                if "error" in statuses[0]:
                    return {"status": "err", "response": statuses[0]["error"]}
                return {"status": "ok", "response": {"type": "default"}}
            return {"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}}
        if t == "scheduleCancel":
            try:
                v.schedule_cancel(action.get("time"))
            except Exception as e:
                return {"status": "err", "response": str(e)}
            return {"status": "ok", "response": {"type": "default"}}
        if t == "updateLeverage":
            sym = self.by_id.get(int(action.get("asset", -1)))
            try:
                if sym is None:
                    raise ValueError(f"Invalid asset {action.get('asset')}")
                v.set_leverage(sym, int(action["leverage"]), bool(action.get("isCross", True)))
            except Exception as e:
                return {"status": "err", "response": str(e)}
            return {"status": "ok", "response": {"type": "default"}}
        return {"status": "err", "response": f"Unsupported action type {t!r}"}

    def _modify(self, acct: Account, m: dict[str, Any], now: int) -> dict[str, Any]:
        ident = m.get("oid")
        w = m.get("order") or {}
        req, err = self._wire_to_request(w, now)
        if req is None:
            return {"error": err}
        v = acct.venue
        old_oid = v._by_cloid.get(ident) if isinstance(ident, str) else int(ident)
        old = v._orders.get(old_oid or -1)
        if self.faults.fill_before_next_modify and old is not None and old.status == OrderStatus.OPEN:
            self.faults.fill_before_next_modify = False
            self.counters["modify_races"] += 1
            v._fill(old, old.req.px, old.remaining, now, maker=True)  # the race: old oid fills first
            v._finish(old)
            v._emit(old.ack(now))
        cloid = req.cloid or (old.req.cloid if old is not None else "")
        if old is not None and not req.cloid:
            req = OrderRequest(req.ts_exch, req.ts_recv, cloid, req.intent_id, req.agent, req.symbol,
                               req.side, req.size, req.px, req.tif, req.reduce_only, req.trigger_px, req.tpsl)
        ack = v.modify(ident if isinstance(ident, str) else int(ident), req)
        if ack.status == OrderStatus.REJECTED:
            return {"error": ack.error}
        if old is not None and old.oid != ack.oid:
            self._order_update(acct, old.oid, "canceled", now)
        return self._status(acct, ack, req, w, now)

    # ------------------------------------------------------------------ app
    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/info", self.info_handler)
        app.router.add_post("/exchange", self.exchange_handler)
        app.router.add_get("/ws", self.ws_handler)

        async def on_startup(_app: web.Application) -> None:
            self._loop = asyncio.get_running_loop()

        async def on_shutdown(_app: web.Application) -> None:
            for ws in list(self._ws):
                await ws.close(code=1001, message=b"server shutdown")

        app.on_startup.append(on_startup)
        app.on_shutdown.append(on_shutdown)
        return app


_TIF_NAME = {Tif.GTC: "Gtc", Tif.IOC: "Ioc", Tif.ALO: "Alo"}


def _order_type_name(req: OrderRequest) -> str:
    if req.trigger_px is None:
        return "Limit"
    kind = "Take Profit" if req.tpsl == "tp" else "Stop"
    return f"{kind} {'Market' if req.px is None else 'Limit'}"


def _direction(start: float, side: int) -> str:
    if start == 0 or (start > 0) == (side > 0):
        return "Open Long" if side > 0 else "Open Short"
    return "Close Short" if side > 0 else "Close Long"


def _identifier(sub: dict[str, Any]) -> str | None:
    t = sub.get("type")
    coin = str(sub.get("coin", "")).lower()
    user = str(sub.get("user", "")).lower()
    if t == "allMids":
        return "allMids"
    if t in ("l2Book", "trades", "bbo", "activeAssetCtx") and coin:
        return f"{t}:{coin}"
    if t == "candle" and coin:
        return f"candle:{coin},{sub.get('interval', '1m')}"
    if t in ("userFills", "userFundings", "orderUpdates", "userEvents") and user:
        return f"{t}:{user}"
    return None


async def _safe_send(ws: web.WebSocketResponse, msg: str) -> None:
    try:
        await ws.send_str(msg)
    except (ConnectionError, RuntimeError):
        pass
