"""The monitoring page of a running strategy, and its Prometheus endpoint.

``hlquant paper`` and ``hlquant live`` serve, on a loopback port from the config
(``monitor.port``, default 8790), a page that updates by itself:

- ``GET /``           the page (one HTML file, no build step, no CDN);
- ``GET /events``     server-sent events: the state as JSON at every change the
                      page must show at once (fill, ack, risk decision, kill switch,
                      heartbeat loss...) and at least every ``monitor.refresh_s``;
- ``GET /api/state``  the same JSON once;
- ``GET /metrics``    Prometheus text format (``prometheus_client``).

A source gives ``snapshot()`` (the state), ``version`` (changes when something
the page shows at once happened) and ``registry`` (Prometheus). A single
process session's source is ``SessionTelemetry``; the supervisor of
``live.topology=processes`` serves ``RedisFleetSource``, which reads the shared
Redis state: the account read model the risk process publishes, the agents'
heartbeats, the components' audit streams, the last event of each market
stream, and the supervisor's own process table.

The page has no authentication, so the server only binds loopback addresses
(reach it from elsewhere through an SSH tunnel).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import msgpack
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from hlquant.config.build import make_dataclass, to_dict
from hlquant.live.telemetry import RECENT_ROWS, _summary, jsonable, state_metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorConfig:
    """The monitoring page (``monitor`` block of the config).

    - enabled (True): serve the page during paper / live sessions.
    - host ("127.0.0.1"): a loopback address; anything else is refused (no auth).
    - port (8790): TCP port; 0 picks a free one (the session logs the URL).
    - refresh_s (1.0): the page gets the state at least this often.
    - min_interval_s (0.2): and at most this often, however busy the session.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8790
    refresh_s: float = 1.0
    min_interval_s: float = 0.2

    def __post_init__(self) -> None:
        if self.host != "localhost":
            try:
                loopback = ipaddress.ip_address(self.host).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise ValueError(f"monitor.host must be a loopback address (the page has no "
                                 f"authentication), got {self.host!r}")
        if not 0 <= int(self.port) <= 65535:
            raise ValueError(f"monitor.port must be 0..65535, got {self.port!r}")
        if self.refresh_s <= 0 or self.min_interval_s < 0:
            raise ValueError("monitor.refresh_s must be > 0 and monitor.min_interval_s >= 0")


def monitor_config(cfg: Any) -> MonitorConfig:
    """The ``monitor`` block of a config (unknown keys are errors naming them)."""
    return make_dataclass(MonitorConfig, to_dict(cfg).get("monitor") or {}, "monitor", drop=())


def page_html() -> str:
    return resources.files("hlquant.live").joinpath("monitor_page.html").read_text(encoding="utf-8")


class MonitorServer:
    """Serves a source's state on loopback (see module doc); runs on the caller's loop."""

    def __init__(self, source: Any, config: MonitorConfig | None = None) -> None:
        self.source = source
        self.config = config or MonitorConfig()
        self.url = ""
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self.clients = 0
        self.pushes = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/events", self._events)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app(), shutdown_timeout=2.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, int(self.config.port))
        await site.start()
        sock = site._server.sockets[0] if site._server is not None and site._server.sockets else None
        self.port = int(sock.getsockname()[1]) if sock is not None else int(self.config.port)
        self.url = f"http://{self.config.host}:{self.port}/"
        return self.url

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ handlers
    async def _page(self, _request: web.Request) -> web.Response:
        return web.Response(text=page_html(), content_type="text/html")

    async def _state(self, _request: web.Request) -> web.Response:
        return web.json_response(self.source.snapshot(), dumps=_dumps)

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.source.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        self.clients += 1
        loop = asyncio.get_running_loop()
        cfg = self.config
        last_v, last_t = None, -1e18
        try:
            await resp.write(b"retry: 1000\n\n")
            while not self._closing.is_set():
                v, now = self.source.version, loop.time()
                if (v != last_v and now - last_t >= cfg.min_interval_s) or now - last_t >= cfg.refresh_s:
                    data = _dumps(self.source.snapshot())
                    await resp.write(b"data: " + data.encode() + b"\n\n")
                    self.pushes += 1
                    last_v, last_t = v, now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), 0.05)
        except (ConnectionResetError, ConnectionError):
            pass  # the browser went away
        finally:
            self.clients -= 1
        return resp


def _dumps(o: Any) -> str:
    return json.dumps(o, separators=(",", ":"), default=str)


@contextlib.asynccontextmanager
async def serving(source: Any, config: MonitorConfig) -> AsyncIterator[MonitorServer | None]:
    """Serve ``source`` while the block runs. A port that cannot be bound is logged as an
    error and the block runs without a page: monitoring never stops trading."""
    if not config.enabled:
        yield None
        return
    server = MonitorServer(source, config)
    try:
        url = await server.start()
    except OSError as e:
        await server.stop()
        log.error("monitor: cannot listen on %s:%s (%s); running without the page "
                  "(set monitor.port, or monitor.enabled=false)", config.host, config.port, e)
        yield None
        return
    log.info("monitor: %s (metrics: %smetrics)", url, url)
    try:
        yield server
    finally:
        await server.stop()


# ---------------------------------------------------------------------------- processes topology
MARKET_KINDS = ("Trade", "BookSnapshot", "BBO", "Candle", "MarkPrice", "FundingRate")


class RedisFleetSource:
    """The state of ``live.topology=processes`` read from the shared Redis (see module doc).

    Audit streams are tailed incrementally (each entry read once), so fees, funding,
    fills and risk decisions are totals over the whole session, not a window."""

    def __init__(self, client: Any, namespace: str, *, symbols: list[str], initial_cash: float,
                 risk: Any = None, supervisor: Any = None, name: str = "", mode: str = "live",
                 session: str = "") -> None:
        from hlquant.bus.redis_state import RedisHeartbeats

        self.r = client
        self.ns = namespace
        self.symbols = list(symbols)
        self.initial_cash = float(initial_cash)
        self.risk_config = risk
        self.supervisor = supervisor
        self.name, self.mode, self.session = name, mode, session or namespace
        self.hb = RedisHeartbeats(client, namespace)
        self.started_ms = int(time.time() * 1000)
        self.version = 0
        self._cursor: dict[str, str] = {}
        self._keys: list[str] = []
        self._keys_at = 0.0
        self.kinds: Counter = Counter()
        self.decisions: Counter = Counter()
        self.venue_rejections: Counter = Counter()
        self.fees = 0.0
        self.funding = 0.0
        self.fills_total = 0
        self.killed, self.kill_reason = False, ""
        self.fills: deque[dict[str, Any]] = deque(maxlen=RECENT_ROWS)
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_ROWS)
        self.curve: deque[list[float]] = deque(maxlen=600)
        self._acct_ts: int | None = None
        self.registry = CollectorRegistry()
        self.registry.register(_SnapshotCollector(self))

    # ------------------------------------------------------------------ redis reads
    def _audit_keys(self) -> list[str]:
        if time.monotonic() - self._keys_at > 5.0 or not self._keys:
            self._keys = sorted(k.decode() if isinstance(k, bytes) else k
                                for k in self.r.scan_iter(match=f"{self.ns}:Audit:*", count=500))
            self._keys_at = time.monotonic()
        return self._keys

    def _tail_audit(self) -> None:
        new = 0
        for key in self._audit_keys():
            start = self._cursor.get(key)
            entries = self.r.xrange(key, min=f"({start}" if start else "-", count=2000)
            for mid, fields in entries:
                self._cursor[key] = mid.decode() if isinstance(mid, bytes) else mid
                raw = fields.get(b"d") or fields.get("d")
                try:
                    row = json.loads(raw)
                    rec = json.loads(row.get("payload") or "{}")
                except (TypeError, ValueError):
                    continue
                rec.update(kind=row.get("kind"), ts_exch=row.get("ts_exch"), agent=row.get("agent"),
                           symbol=row.get("symbol"))
                self._apply(row, rec)
                new += 1
        if new:
            self.version += 1

    def _apply(self, row: dict[str, Any], rec: dict[str, Any]) -> None:
        kind = rec["kind"]
        self.kinds[kind] += 1
        self.recent.appendleft({"seq": row.get("seq"), "kind": kind, "ts": rec.get("ts_exch"),
                                "agent": rec.get("agent") or row.get("session", ""),
                                "symbol": rec.get("symbol") or "", "text": _summary(rec)})
        if kind == "Fill" and row.get("session") == "risk":  # the portfolio owner's record
            self.fills_total += 1
            self.fees += float(rec.get("fee") or 0.0)
            self.fills.appendleft({"ts": rec.get("ts_exch"), "symbol": rec.get("symbol"),
                                   "side": "buy" if rec.get("side") == "BUY" else "sell", "px": rec.get("px"),
                                   "sz": rec.get("sz"), "fee": rec.get("fee"), "liquidity": rec.get("liquidity"),
                                   "agent": rec.get("agent") or "", "cloid": rec.get("cloid") or "",
                                   "tid": rec.get("tid")})
        elif kind == "FundingPayment" and row.get("session") == "risk":
            self.funding += float(rec.get("amount") or 0.0)
        elif kind == "RiskDecision":
            self.decisions[str(rec.get("code"))] += 1
        elif kind == "OrderAck" and rec.get("status") == "REJECTED" and row.get("session") == "risk":
            self.venue_rejections[str(rec.get("code"))] += 1
        elif kind == "KillSwitch":
            self.killed, self.kill_reason = True, str(rec.get("reason", ""))

    def _account(self) -> dict[str, Any]:
        raw = {(k.decode() if isinstance(k, bytes) else k): v
               for k, v in self.r.hgetall(f"{self.ns}:acct:{{account}}").items()}
        if not raw:
            return {}
        ts = int(raw["ts"])
        if ts != self._acct_ts:
            self._acct_ts = ts
            self.version += 1
        return {"ts": ts, "equity": float(raw.get("equity", "nan")), "fills": int(raw.get("fills", 0)),
                "positions": msgpack.unpackb(raw["positions"]) if "positions" in raw else {},
                "orders": msgpack.unpackb(raw["orders"]) if "orders" in raw else []}

    def _market(self) -> tuple[dict[str, float], dict[str, Any]]:
        from hlquant.bus.redis_state import unpack

        marks: dict[str, float] = {}
        lags, last = [], None
        now = time.time() * 1000
        for s in self.symbols:
            for kind in MARKET_KINDS:
                res = self.r.xrevrange(f"{self.ns}:{kind}:{{{s}}}", count=1)
                if not res:
                    continue
                fields = res[0][1]
                try:
                    ev = unpack(fields.get(b"d") or fields.get("d"))
                except Exception:  # an undecodable entry is the bus's problem; skip it here
                    continue
                lags.append(ev.ts_recv - ev.ts_exch)
                last = ev.ts_recv if last is None else max(last, ev.ts_recv)
                px = getattr(ev, "px", None) or getattr(ev, "close", None) or getattr(ev, "mark_px", None)
                if px is None and getattr(ev, "bids", None) and getattr(ev, "asks", None):
                    px = (ev.bids[0][0] + ev.asks[0][0]) / 2
                if px:
                    marks.setdefault(s, float(px))
        feed = {"lag_ms": {"p50": None, "p99": None, "last": max(lags) if lags else None},
                "last_event_age_s": (now - last) / 1000.0 if last else None, "connected": None,
                "events": {}}
        return marks, feed

    # ------------------------------------------------------------------ state
    def snapshot(self) -> dict[str, Any]:
        now = int(time.time() * 1000)
        self._tail_audit()
        acct = self._account()
        marks, feed = self._market()
        equity = acct.get("equity")
        positions, gross, per_sym = [], 0.0, 0.0
        for s, (size, entry) in sorted((acct.get("positions") or {}).items()):
            mark = marks.get(s, entry)
            notional = size * mark
            gross += abs(notional)
            per_sym = max(per_sym, abs(notional))
            positions.append({"symbol": s, "size": size, "entry_px": entry, "mark": mark,
                              "notional": notional, "unrealized": size * (mark - entry)})
        if equity is not None and (not self.curve or self.curve[-1][1] != equity or now - self.curve[-1][0] > 1000):
            self.curve.append([now, equity])
        limits = []
        rc = self.risk_config
        if rc is not None and equity:
            limits = [{"name": "max_notional_per_symbol", "limit": rc.max_notional_per_symbol, "used": per_sym},
                      {"name": "max_gross_exposure", "limit": rc.max_gross_exposure, "used": gross},
                      {"name": "max_leverage", "limit": rc.max_leverage, "used": gross / equity if equity > 0 else None}]
            for lim in limits:
                lim["fraction"] = lim["used"] / lim["limit"] if lim["used"] is not None else None
        net = equity - self.initial_cash if equity is not None else None
        agents = []
        for a in self.hb.agents():
            last = self.hb.last_seen(a)
            agents.append({"name": a, "alive": self.hb.alive(a, now), "last_beat": last,
                           "beat_age_s": (now - last) / 1000.0 if last else None})
        orders = [{"cloid": c, "symbol": s, "agent": a, "side": "BUY" if side > 0 else "SELL", "size": sz,
                   "px": px, "tif": str(tif), "status": "OPEN", "reduce_only": ro, "trigger_px": trig}
                  for c, s, a, side, sz, px, tif, ro, trig in acct.get("orders") or []]
        snap = {
            "session": self.session, "mode": self.mode, "strategy": self.name, "topology": "processes",
            "time": now, "started": self.started_ms, "uptime_s": (now - self.started_ms) / 1000.0,
            "events": sum(self.kinds.values()), "equity": equity, "initial_cash": self.initial_cash,
            "account_age_s": (now - acct["ts"]) / 1000.0 if acct.get("ts") else None,
            "pnl": {"trading": None if net is None else net + self.fees - self.funding, "fees": self.fees,
                    "funding": self.funding, "net": net},
            "positions": positions, "open_orders": orders, "curve": list(self.curve),
            "risk": {"killed": self.killed, "kill_reason": self.kill_reason, "limits": limits,
                     "decisions": dict(self.decisions),
                     "rejections": {k: v for k, v in self.decisions.items() if k != "APPROVED"},
                     "venue_rejections": dict(self.venue_rejections)},
            "agents": agents, "feed": feed,
            "router": {"ack_latency_ms": {"p50": None, "p99": None, "n": 0},
                       "stats": {"orders": self.kinds.get("OrderRequest", 0),
                                 "acks": self.kinds.get("OrderAck", 0)}},
            "fills": list(self.fills)[:50], "fills_total": self.fills_total,
            "audit": list(self.recent)[:50], "audit_counts": dict(self.kinds),
            "processes": self.supervisor.health() if self.supervisor is not None else None,
        }
        return jsonable(snap)


class _SnapshotCollector:
    def __init__(self, source: Any) -> None:
        self.source = source

    def describe(self) -> list:
        return []

    def collect(self):  # noqa: ANN201 (prometheus_client protocol)
        return iter(state_metrics(self.source.snapshot()))


@contextlib.asynccontextmanager
async def fleet_monitor(cfg: Any, supervisor: Any = None) -> AsyncIterator[MonitorServer | None]:
    """The supervisor's page for ``live.topology=processes``: serves the shared Redis state
    while the block (the supervised components) runs."""
    from hlquant.live.roles.common import role_spec

    mc = monitor_config(cfg)
    if not mc.enabled:
        yield None
        return
    spec, r = role_spec(cfg)
    src = RedisFleetSource(r, spec.live.namespace, symbols=spec.symbols, initial_cash=spec.venue.initial_cash,
                           risk=spec.risk, supervisor=supervisor, name=spec.name, mode="live")
    async with serving(src, mc) as server:
        yield server
