"""A fake Hyperliquid exchange that speaks the real wire protocol on loopback.

``POST /info``, ``POST /exchange`` and the WebSocket ``/ws`` answer in the
exact shapes Hyperliquid uses, so the official SDK and hlquant's own clients
can be tested offline. One module per concern, combined here:

- ``auth``: signer recovery (L1 and user-signed actions), agents, vaults, nonces;
- ``info``: every /info request type;
- ``actions``: every /exchange action, on the account's SimVenue;
- ``ws``: subscriptions, snapshots, pushes and posts;
- ``views``: how an account's orders, fills and positions are rendered;
- ``faults``: ambiguous replies and races on demand.

Each account is a SimVenue (all fed the same market data) used only through
its public methods. Market data is replayed from ``MarketData`` with its
timestamps rebased to now (candles kept on their interval grid), or pushed
by tests with ``publish``. A timer advances every account's venue, so a
scheduled cancel fires at its time whether or not anything else happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque
from typing import Any

import numpy as np
from aiohttp import web

from hlquant.core.assets import DEFAULT_ASSETS, AssetSpec
from hlquant.core.events import (
    BBO,
    BookSnapshot,
    CancelAck,
    Candle,
    Event,
    Fill,
    FundingPayment,
    FundingRate,
    MarkPrice,
    OrderAck,
    Trade,
)
from hlquant.fakeexchange.actions import ActionsMixin
from hlquant.fakeexchange.auth import AuthMixin
from hlquant.fakeexchange.faults import Faults, fault_response
from hlquant.fakeexchange.info import UNREADABLE, InfoMixin
from hlquant.fakeexchange.market import MarketState, build_universe, num, side_wire
from hlquant.fakeexchange.views import (
    Account,
    Placed,
    basic_order,
    clearinghouse,
    direction,
    status_wire,
)
from hlquant.fakeexchange.ws import WsMixin
from hlquant.venues.sim import SimVenue, SimVenueConfig

log = logging.getLogger(__name__)

TICK_S = 0.05  # how often the venues advance on their own (dead man's switch, latency)
CANDLE_GRID_MS = 60_000


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


class FakeExchange(AuthMixin, InfoMixin, ActionsMixin, WsMixin):
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
        self.agent_info: dict[str, tuple[str, str, int]] = {}  # agent -> (master, name, validUntil)
        self.sub_accounts: dict[str, str] = {}  # sub-account / vault (lower) -> master (lower)
        self.sub_account_names: dict[str, str] = {}
        self.referrers: dict[str, str] = {}
        self.builder_fees: dict[tuple[str, str], str] = {}
        self.nonces: dict[str, list[int]] = defaultdict(list)
        self.weights: dict[str, _WeightBucket] = defaultdict(_WeightBucket)
        self.faults = Faults()
        self.counters: dict[str, int] = defaultdict(int)
        self.orders_received: list[dict[str, Any]] = []  # every order accepted onto a venue
        self.order_hooks: list[Any] = []  # callables(wire, perf_counter_ns) when an order request arrives
        self._ws: set[web.WebSocketResponse] = set()
        self._subs: dict[web.WebSocketResponse, dict[str, dict]] = {}
        self._ctx_sent: dict[str, float] = {}  # coin -> when its asset context was last pushed
        self._ctx_dirty: set[str] = set()  # coins whose context changed since (throttled)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        for addr, cash in (accounts or {}).items():
            self.add_account(addr, cash)
        for agent, master in (agents or {}).items():
            self.approve_agent(agent, master)

    # ------------------------------------------------------------------ accounts
    def add_account(self, address: str, cash: float = 100_000.0) -> Account:
        a = address.lower()
        if a not in self.accounts:
            cfg = SimVenueConfig(**{**self.venue_config.__dict__, "initial_cash": float(cash)})
            venue = SimVenue(self.assets, cfg, clock=self.clock, account=a)
            acct = Account(a, venue, deposited=float(cash))
            now = self.clock.now_ms()
            if cash:
                acct.ledger.append({"time": now, "hash": "0x" + f"{now:064x}",
                                    "delta": {"type": "deposit", "usdc": num(cash)}})
            acct.history.append((now, float(cash), 0.0))
            venue.add_listener(lambda ev, acct=acct: self._on_venue_event(acct, ev))
            self.accounts[a] = acct
        return self.accounts[a]

    def approve_agent(self, agent: str, master: str, name: str = "") -> None:
        m = master.lower()
        self.add_account(m)
        self.agents[agent.lower()] = m
        self.agent_info[agent.lower()] = (m, name, self.clock.now_ms() + 180 * 86_400_000)

    def clearinghouse_state(self, address: str) -> dict[str, Any]:
        """The ``clearinghouseState`` answer for ``address`` (what /info would say now)."""
        return clearinghouse(self.accounts.get(address.lower()), self.clock.now_ms(),
                             self.venue_config.maintenance_margin_fraction)

    def open_interest(self, symbol: str) -> float:
        """Open interest in coins: the sum of the long positions of every account."""
        return sum(max(a.venue.position_size(symbol), 0.0) for a in self.accounts.values())

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
        self._push_ctx(ev.symbol)  # the asset context streams on every change of its coin

    async def replay(self, events, speed: float = 1.0, rebase: bool = True,
                     stop: asyncio.Event | None = None) -> int:
        """Stream historical events; ``speed`` x real time (0 = as fast as possible).
        With ``rebase`` the timestamps are shifted so the first event is 'now', by a
        whole number of minutes (rounded up) so one-minute candles stay on their grid;
        at real time (speed 1) the start waits out that rounding so stamps equal the
        wall clock."""
        n = 0
        t_wall0 = self.clock.now_ms()
        t_data0 = None
        shift = 0
        for ev in events:
            if stop is not None and stop.is_set():
                break
            if t_data0 is None:
                t_data0 = ev.ts_exch
                exact = t_wall0 - t_data0
                shift = -(-exact // CANDLE_GRID_MS) * CANDLE_GRID_MS
                if speed == 1:
                    t_wall0 += shift - exact
            if speed > 0:
                due = t_wall0 + (ev.ts_exch - t_data0) / speed
                delay = (due - self.clock.now_ms()) / 1000.0
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                if n % 200 == 0:
                    await asyncio.sleep(0)
            if rebase:
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
            pos_after = acct.venue.position_size(ev.symbol)
            start = pos_after - int(ev.side) * ev.sz
            f = {"coin": ev.symbol, "px": num(ev.px), "sz": num(ev.sz), "side": side_wire(ev.side),
                 "time": ev.ts_exch, "startPosition": num(start), "dir": direction(start, int(ev.side), ev.sz),
                 "closedPnl": num(ev.closed_pnl), "hash": "0x" + f"{ev.tid:064x}", "oid": ev.oid,
                 "crossed": ev.liquidity != "maker", "fee": num(ev.fee), "tid": ev.tid, "feeToken": "USDC"}
            if ev.cloid:
                f["cloid"] = ev.cloid
            if ev.liquidity == "liquidation":
                f["liquidation"] = {"liquidatedUser": u, "markPx": num(ev.px), "method": "market"}
            acct.fills.append(f)
            acct.volume += ev.px * ev.sz
            self._record_value(acct, ev.ts_exch)
            self._broadcast("userFills", {"user": u, "fills": [f]}, f"userFills:{u}")
            self._broadcast("user", {"fills": [f]}, f"userEvents:{u}")
            self._push_account(acct)
        elif isinstance(ev, OrderAck):
            self._order_update(acct, ev.oid, ev.ts_exch)
        elif isinstance(ev, CancelAck):
            if ev.ok:
                self._order_update(acct, ev.oid, ev.ts_exch)
                o = acct.venue.order_object(ev.oid)
                if o is not None and o.reason:  # the exchange cancelled it, not the user
                    self._broadcast("user", {"nonUserCancel": [{"coin": ev.symbol, "oid": ev.oid}]},
                                    f"userEvents:{u}")
        elif isinstance(ev, FundingPayment):
            row = {"time": ev.ts_exch, "hash": "0x" + "0" * 64,
                   "delta": {"type": "funding", "coin": ev.symbol, "usdc": num(ev.amount), "szi": num(ev.position),
                             "fundingRate": num(ev.rate), "nSamples": None}}
            acct.fundings.append(row)
            self._record_value(acct, ev.ts_exch)
            flat = {"time": ev.ts_exch, "coin": ev.symbol, "usdc": num(ev.amount), "szi": num(ev.position),
                    "fundingRate": num(ev.rate)}
            self._broadcast("userFundings", {"user": u, "fundings": [flat]}, f"userFundings:{u}")
            self._broadcast("user", {"funding": {**flat, "nSamples": None}}, f"userEvents:{u}")

    def _record_value(self, acct: Account, t: int) -> None:
        eq = acct.venue.equity()
        acct.history.append((t, eq, eq - acct.deposited))

    def _order_update(self, acct: Account, oid: int, ts: int) -> None:
        """Push the order's current status on ``orderUpdates`` when it changed."""
        p: Placed | None = acct.placed.get(oid)
        o = acct.venue.order_object(oid)
        if p is None or o is None:
            return
        status = status_wire(o)
        sz = num(o.remaining)
        if p.status == status and p.sz == sz:
            return
        p.status, p.sz, p.status_ts = status, sz, ts
        self._broadcast("orderUpdates", [{"order": basic_order(acct, o), "status": status, "statusTimestamp": ts}],
                        f"orderUpdates:{acct.address}")

    # ------------------------------------------------------------------ http
    async def info_handler(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=422, text=UNREADABLE, content_type="text/plain")
        status, out = await self._info(body if isinstance(body, dict) else {}, request.remote or "?")
        if status == 429:
            return web.Response(status=429, text="null", content_type="application/json")
        if self.faults.reply_delay_s:
            await asyncio.sleep(self.faults.reply_delay_s)
        if status != 200:
            return web.Response(status=status, text=str(out), content_type="text/plain")
        return web.json_response(out, status=status)

    async def exchange_handler(self, request: web.Request) -> web.StreamResponse:
        t_arrival = time.perf_counter_ns()
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=422, text=UNREADABLE, content_type="text/plain")
        if not isinstance(body, dict):
            return web.Response(status=422, text=UNREADABLE, content_type="text/plain")
        action_type = (body.get("action") or {}).get("type")
        if self.order_hooks and action_type == "order":
            for hook in self.order_hooks:  # latency probes: the moment the request arrived
                for w in body["action"].get("orders", []):
                    hook(w, t_arrival)
        fault = self.faults.take(action_type)
        if fault is not None:
            self.counters[f"fault:{fault.kind}:{'after' if fault.after else 'before'}"] += 1
            if not fault.after:
                if fault.kind != "timeout":
                    return fault_response(fault.kind)  # nothing was processed
                await asyncio.sleep(fault.delay_s)  # processed late: the client has given up
        status, out = await self._exchange(body, request.remote or "?")
        if status == 429:
            return web.Response(status=429, text="null", content_type="application/json")
        if fault is not None and fault.after:
            if fault.kind != "timeout":
                return fault_response(fault.kind)  # processed; the reply is garbled
            await asyncio.sleep(fault.delay_s)  # processed; the reply comes too late
        if self.faults.drop_next_order_reply and action_type == "order" and status == 200:
            self.faults.drop_next_order_reply -= 1
            self.counters["replies_dropped"] += 1
            if request.transport is not None:
                request.transport.close()  # the order is on the book; the client never hears
            return web.Response(status=200)
        if self.faults.reply_delay_s:
            await asyncio.sleep(self.faults.reply_delay_s)
        if status != 200:
            return web.Response(status=status, text=str(out), content_type="text/plain")
        return web.json_response(out, status=status)

    def _charge(self, ip: str, w: int) -> bool:
        ok = self.weights[ip].take(w, self.faults.weight_per_min)
        if not ok:
            self.counters["rate_limited"] += 1
        return ok

    async def _ticker(self) -> None:
        """Time passes on the exchange even when nobody trades: venues advance."""
        while True:
            await asyncio.sleep(TICK_S)
            now = self.clock.now_ms()
            for a in list(self.accounts.values()):
                try:
                    a.venue.advance(now)
                except Exception:  # a bug in one account must not stop the exchange's clock
                    log.exception("advancing account %s failed", a.address)
            for coin in list(self._ctx_dirty):
                self._push_ctx(coin)

    # ------------------------------------------------------------------ app
    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/info", self.info_handler)
        app.router.add_post("/exchange", self.exchange_handler)
        app.router.add_get("/ws", self.ws_handler)
        tasks: list[asyncio.Task] = []

        async def on_startup(_app: web.Application) -> None:
            self._loop = asyncio.get_running_loop()
            tasks.append(asyncio.create_task(self._ticker()))

        async def on_shutdown(_app: web.Application) -> None:
            for t in tasks:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            for ws in list(self._ws):
                await ws.close(code=1001, message=b"server shutdown")

        app.on_startup.append(on_startup)
        app.on_shutdown.append(on_shutdown)
        return app


__all__ = ["FakeExchange", "WallMs"]
