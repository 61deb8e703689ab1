"""What a running paper or live session looks like from outside: one snapshot, one registry.

``SessionTelemetry`` watches a ``LiveEngine`` without changing its path: it sees
every audit record as it is written (intents, risk decisions, orders, acks,
fills), every market event the session applies (feed lag = receive time -
exchange time) and the feed's counters. From those it keeps

- ``snapshot()``: a JSON-ready dict (positions, open orders, PnL split into
  trading / fees / funding, the equity curve, risk limits and their use, the kill
  switch, rejections by reason, agent heartbeats, feed health, router latency
  and rate budget, the latest fills and audit records). The monitoring page,
  the console status line and ``status.json`` all show this one dict;
- ``registry``: Prometheus metrics of the same figures (``/metrics``):
  histograms of decision-to-ack latency and feed lag, counters, and gauges read
  from the snapshot at scrape time;
- ``ack_latencies``: every decision-to-ack latency measured (wall time, perf
  counter), written to ``latency.csv`` for the parity report.

Decision-to-ack is measured where it happens, from the moment the agent's
intent is recorded to the moment the venue's answer is recorded (a venue's own
timestamps can say less: Hyperliquid's REST answer carries none).

Everything runs on the session's event loop; nothing here takes a lock.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                     5.0, 10.0)
LAG_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CURVE_POINTS = 600
RECENT_ROWS = 100
WINDOW = 5_000  # samples kept for the p50/p99 shown on the page


def quantiles(values: Any, qs: tuple[float, ...] = (0.5, 0.99)) -> list[float | None]:
    a = np.asarray(list(values), dtype=float)
    if not len(a):
        return [None for _ in qs]
    return [float(v) for v in np.quantile(a, qs)]


def jsonable(o: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, recursively (JSON has no NaN)."""
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, deque)):
        return [jsonable(v) for v in o]
    if isinstance(o, (np.floating, float)):
        f = float(o)
        return f if math.isfinite(f) else None
    if isinstance(o, np.integer):
        return int(o)
    if hasattr(o, "name") and hasattr(o, "value"):  # enums
        return o.name
    return o


def _summary(rec: Mapping[str, Any]) -> str:
    """One line of an audit record for people (the page's audit table)."""
    k = rec.get("kind", "")
    g = rec.get
    if k == "Intent":
        what = f"target {g('target'):+.6g}" if g("target") is not None else \
            f"{g('side')} {g('size'):.6g} @ {g('px') or 'mkt'}"
        return f"{what} {g('reason') or ''}".strip()
    if k == "RiskDecision":
        return f"{g('code')} {g('order_size', 0.0):+.6g} {g('reason', '')}".strip()
    if k == "OrderRequest":
        return f"{g('side')} {g('size'):.6g} @ {g('px') or 'mkt'} {g('tif')} {g('cloid', '')[:10]}"
    if k == "OrderAck":
        err = f" {g('code')}: {g('error')}" if g("error") else ""
        return f"{g('status')} oid {g('oid')} filled {g('filled_sz', 0.0):.6g}{err}"
    if k == "Fill":
        return f"{g('side')} {g('sz'):.6g} @ {g('px'):.6g} fee {g('fee'):.4f} {g('liquidity')}"
    if k in ("CancelRequest", "CancelAck"):
        return f"{g('cloid', '')[:10]} {g('reason', '')} {'' if g('ok', True) else g('error', '')}".strip()
    if k == "FundingPayment":
        return f"{g('amount'):+.4f} at rate {g('rate'):.6g}"
    keep = {kk: v for kk, v in rec.items() if kk not in ("kind", "ts_exch", "ts_recv", "agent", "symbol")}
    return ", ".join(f"{kk}={v}" for kk, v in list(keep.items())[:4])[:160]


class SessionTelemetry:
    """Taps a LiveEngine (and its feed) and serves its state (see module doc)."""

    def __init__(self, engine: Any, feed: Any = None, mode: str = "paper", name: str = "",
                 started_ms: int | None = None) -> None:
        self.engine = engine
        self.kernel = engine.kernel
        self.feed = feed
        self.mode = mode
        self.name = name or self.kernel.spec.name
        self.session = self.kernel.session
        self.started_ms = int(started_ms if started_ms is not None else time.time() * 1000)
        self.version = 0  # bumped on every change the page should show at once
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_ROWS)
        self.fills: deque[dict[str, Any]] = deque(maxlen=RECENT_ROWS)
        self.kinds: Counter = Counter()
        self.market_kinds: Counter = Counter()
        self.lag_ms: deque[float] = deque(maxlen=WINDOW)
        self.ack_ms: deque[float] = deque(maxlen=WINDOW)
        self.ack_latencies: list[tuple[str, str, int, float]] = []  # cloid, intent, t_decision, ms
        self.samples: deque[tuple[int, float]] = deque(maxlen=20_000)  # (wall ms, equity) for the page
        self._curve_key: tuple = ()
        self._curve_pts: list[list[float]] = []
        self.last_event_wall: float | None = None
        self.last_lag_ms: float | None = None
        self._decided: dict[str, tuple[float, int]] = {}  # intent id -> (perf, wall ms)
        self._sent: dict[str, tuple[str, float, int]] = {}  # cloid -> (intent id, perf, wall ms)
        self.registry = CollectorRegistry()
        self.h_ack = Histogram("hlquant_decision_to_ack_seconds",
                               "Agent decision (intent recorded) to the venue's answer (ack recorded)",
                               buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.h_lag = Histogram("hlquant_feed_lag_seconds",
                               "Market data: receive time - exchange time", buckets=LAG_BUCKETS_S,
                               registry=self.registry)
        self.registry.register(_StateCollector(self))
        self.kernel.audit.taps.append(self._on_audit)  # every record passes here

    # ------------------------------------------------------------------ taps
    def on_market(self, ev: Any) -> None:
        """A market event is about to be applied (the session loop calls this)."""
        lag = float(ev.ts_recv - ev.ts_exch)
        self.market_kinds[type(ev).__name__] += 1
        self.last_event_wall = time.time()
        if math.isfinite(lag):
            self.last_lag_ms = lag
            self.lag_ms.append(lag)
            self.h_lag.observe(max(lag, 0.0) / 1000.0)

    def _on_audit(self, seq: int, rec: dict[str, Any]) -> None:
        kind = rec.get("kind", "?")
        self.kinds[kind] += 1
        row = {"seq": seq, "kind": kind, "ts": rec.get("ts_exch"), "agent": rec.get("agent") or "",
               "symbol": rec.get("symbol") or "", "text": _summary(rec)}
        self.recent.appendleft(row)
        now_perf, now_wall = time.perf_counter(), int(time.time() * 1000)
        if kind == "Intent":
            self._decided[rec["intent_id"]] = (now_perf, now_wall)
            if len(self._decided) > 50_000:
                self._decided.pop(next(iter(self._decided)))
        elif kind == "OrderRequest":
            iid = rec.get("intent_id", "")
            t0 = self._decided.get(iid, (now_perf, now_wall))
            self._sent[rec["cloid"]] = (iid, *t0)
            if len(self._sent) > 50_000:
                self._sent.pop(next(iter(self._sent)))
        elif kind == "OrderAck":
            sent = self._sent.pop(rec.get("cloid", ""), None)
            if sent is not None and rec.get("status") != "UNKNOWN":
                iid, p0, w0 = sent
                ms = (now_perf - p0) * 1000.0
                self.ack_ms.append(ms)
                self.ack_latencies.append((rec["cloid"], iid, w0, ms))
                self.h_ack.observe(ms / 1000.0)
        elif kind == "Fill":
            side = rec.get("side")
            self.fills.appendleft({
                "ts": rec.get("ts_exch"), "ts_recv": rec.get("ts_recv"), "symbol": rec.get("symbol"),
                "side": "buy" if side in ("BUY", 1) else "sell", "px": rec.get("px"),
                "sz": rec.get("sz"), "fee": rec.get("fee"), "liquidity": rec.get("liquidity"),
                "agent": rec.get("agent") or "", "cloid": rec.get("cloid") or "", "tid": rec.get("tid"),
                "seen_ms": now_wall,
            })
        if kind in ("Fill", "OrderAck", "RiskDecision", "CancelAck", "FundingPayment", "KillSwitch",
                    "HeartbeatLoss", "AgentError", "PositionCorrected"):
            self.version += 1

    # ------------------------------------------------------------------ state
    def sample_equity(self, now_ms: int | None = None, equity: float | None = None) -> None:
        """Keep an equity point at most once a second (the session's timer calls this), so the
        page draws a curve even when the strategy trades no candles."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if not self.samples or now_ms - self.samples[-1][0] >= 1000:
            self.samples.append((now_ms, self.kernel.portfolio.equity() if equity is None else equity))

    def _curve(self, now_ms: int, equity: float) -> list[list[float]]:
        """The kernel's bar-close samples plus this view's own (``sample_equity``), both in
        time order (merged, not sorted), recomputed when either grew."""
        self.sample_equity(now_ms, equity)
        curve = self.engine.handler.curve
        key = (len(self.samples), self.samples[-1][0] if self.samples else 0, curve.n)
        if key != self._curve_key:
            t, eq, _ = curve.arrays()
            pts = list(heapq.merge(self.samples, zip(t.tolist(), eq.tolist(), strict=True)))
            if len(pts) > CURVE_POINTS:
                idx = np.linspace(0, len(pts) - 1, CURVE_POINTS).astype(int)
                pts = [pts[i] for i in idx]
            self._curve_pts, self._curve_key = [[int(a), float(b)] for a, b in pts], key
        return [[self.started_ms, self.kernel.portfolio.initial_cash], *self._curve_pts, [now_ms, equity]]

    def _risk(self, now_ms: int, equity: float) -> dict[str, Any]:
        risk, pf = self.kernel.risk, self.kernel.portfolio
        cfg = risk.config
        gross = pf.gross_exposure()
        per_sym = max((abs(pf.notional(s)) for s in pf.positions), default=0.0)
        lev = gross / equity if equity > 0 else math.inf
        dd = 1 - equity / risk.peak_equity if risk.peak_equity > 0 else 0.0
        tokens = risk.bucket.available(now_ms)
        limits = [
            ("max_notional_per_symbol", cfg.max_notional_per_symbol, per_sym),
            ("max_gross_exposure", cfg.max_gross_exposure, gross),
            ("max_leverage", cfg.max_leverage, lev),
            ("max_drawdown", cfg.max_drawdown, max(dd, 0.0)),
            ("order_burst", float(cfg.order_burst), cfg.order_burst - tokens),
        ]
        rejections = {k: v for k, v in risk.counts.items() if k != "APPROVED"}
        return {
            "killed": bool(risk.killed), "kill_reason": risk.kill_reason,
            "limits": [{"name": n, "limit": lim, "used": used, "fraction": used / lim if lim else None}
                       for n, lim, used in limits],
            "decisions": dict(risk.counts), "rejections": rejections,
            "venue_rejections": dict(self.kernel.router.stats.by_error),
            "dead_agents": sorted(risk.dead),
        }

    def _agents(self, now_ms: int) -> list[dict[str, Any]]:
        hb, runner, risk = self.kernel.heartbeats, self.kernel.runner, self.kernel.risk
        out = []
        for a in runner.agents:
            last = hb.last_seen(a.name)
            out.append({
                "name": a.name, "symbols": list(a.symbols), "trigger": a.config.trigger,
                "alive": bool(a.alive and hb.alive(a.name, now_ms) and a.name not in risk.dead),
                "last_beat": last, "beat_age_s": (now_ms - last) / 1000.0 if last else None,
                "ttl_s": a.config.heartbeat_ttl_ms / 1000.0,
                "errors": int(runner.errors_by_agent.get(a.name, 0)),
                "stale_skipped": int(runner.stale_by_agent.get(a.name, 0)),
            })
        return out

    def _feed(self) -> dict[str, Any]:
        counters = dict(getattr(self.feed, "counters", {}) or {})
        p50, p99 = quantiles(self.lag_ms)
        age = time.time() - self.last_event_wall if self.last_event_wall else None
        return {
            "lag_ms": {"p50": p50, "p99": p99, "last": self.last_lag_ms},
            "last_event_age_s": age,
            "connected": bool(self.feed.connected.is_set()) if hasattr(self.feed, "connected") else None,
            "connects": counters.get("connects", 0), "reconnects": counters.get("reconnects", 0),
            "gaps": counters.get("gaps", 0), "messages": counters.get("messages", 0),
            "bad_messages": counters.get("bad_messages", 0), "events": dict(self.market_kinds),
        }

    def _router(self, now_ms: int) -> dict[str, Any]:
        router = self.kernel.router
        p50, p99 = quantiles(self.ack_ms)
        budget: dict[str, Any] = {
            "orders_tokens": router.bucket.available(now_ms), "orders_burst": router.config.burst,
            "weight_tokens": router.weight.available(now_ms), "weight_per_min": router.config.weight_per_min,
        }
        ex = getattr(self.kernel.venue, "exchange", None)
        if ex is not None and hasattr(ex, "budget"):
            budget.update(address_used=ex.budget.used, address_cap=ex.budget.cap,
                          address_remaining=ex.budget.remaining)
        return {"ack_latency_ms": {"p50": p50, "p99": p99, "n": len(self.ack_latencies)},
                "budget": budget, "stats": {k: v for k, v in vars(router.stats).items() if k != "by_error"},
                "queued": router.queued, "unknown": len(router.unknown)}

    def snapshot(self) -> dict[str, Any]:
        """The whole state, JSON-ready (NaN as null)."""
        k = self.kernel
        pf, router = k.portfolio, k.router
        now_ms = int(time.time() * 1000)
        equity = pf.equity()
        positions = []
        for s, p in sorted(pf.positions.items()):
            if not p.size and not p.n_fills:
                continue
            mark = pf.marks.get(s, p.entry_px)
            positions.append({"symbol": s, "size": p.size, "entry_px": p.entry_px, "mark": mark,
                              "notional": p.size * mark, "unrealized": p.unrealized(mark),
                              "realized": p.realized, "fees": p.fees, "funding": p.funding,
                              "fills": p.n_fills})
        orders = [{"cloid": c, "symbol": o.req.symbol, "agent": o.req.agent, "side": o.req.side.name,
                   "size": o.remaining, "px": o.req.px, "tif": o.req.tif.name, "status": o.status.name,
                   "reduce_only": o.req.reduce_only, "trigger_px": o.req.trigger_px}
                  for c, o in router.open.items()]
        trading = pf.realized() + pf.unrealized()
        snap = {
            "session": self.session, "mode": self.mode, "strategy": self.name, "topology": "single",
            "time": now_ms, "started": self.started_ms, "uptime_s": (now_ms - self.started_ms) / 1000.0,
            "events": self.engine.events, "equity": equity, "initial_cash": pf.initial_cash,
            "pnl": {"trading": trading, "fees": pf.fees(), "funding": pf.funding(),
                    "net": equity - pf.initial_cash},
            "positions": positions, "open_orders": orders,
            "curve": self._curve(now_ms, equity),
            "risk": self._risk(now_ms, equity), "agents": self._agents(now_ms),
            "feed": self._feed(), "router": self._router(now_ms),
            "fills": list(self.fills)[:50], "fills_total": len(k.fills),
            "audit": list(self.recent)[:50], "audit_counts": dict(self.kinds),
        }
        return jsonable(snap)


class _StateCollector:
    """Gauges and counters read from the state at scrape time (Prometheus custom collector)."""

    def __init__(self, t: SessionTelemetry) -> None:
        self.t = t

    def describe(self) -> list[Metric]:
        return []  # no fixed description: metrics are produced at collect time

    def collect(self) -> Iterator[Metric]:
        return iter(state_metrics(self.t.snapshot()))


def state_metrics(snap: Mapping[str, Any]) -> list[Metric]:
    """Prometheus families from a snapshot (shared by single sessions and the supervisor's
    view of the Redis state); a figure the snapshot lacks is left out."""
    out: list[Metric] = []
    fams: dict[str, GaugeMetricFamily] = {}

    def gauge(name: str, doc: str, value: Any, labels: Mapping[str, str] | None = None) -> None:
        if value is None:
            return
        g = fams.get(name)
        if g is None:
            g = fams[name] = GaugeMetricFamily(name, doc, labels=list(labels or {}))
            out.append(g)
        g.add_metric(list((labels or {}).values()), float(value))

    gauge("hlquant_equity_usd", "Account equity", snap.get("equity"))
    for comp, v in (snap.get("pnl") or {}).items():
        gauge("hlquant_pnl_usd", "PnL by component (trading, fees paid, funding received, net)", v,
              {"component": comp})
    for p in snap.get("positions") or []:
        gauge("hlquant_position_size", "Signed position (coins)", p.get("size"), {"symbol": p["symbol"]})
        gauge("hlquant_position_notional_usd", "Signed position notional at the mark", p.get("notional"),
              {"symbol": p["symbol"]})
    gauge("hlquant_open_orders", "Orders open or pending at the venue", len(snap.get("open_orders") or []))
    risk = snap.get("risk") or {}
    if "killed" in risk:
        gauge("hlquant_kill_switch", "1 when the risk engine's kill switch is on", int(bool(risk["killed"])))
    for lim in risk.get("limits") or []:
        gauge("hlquant_risk_limit", "Configured risk limit", lim.get("limit"), {"limit": lim["name"]})
        gauge("hlquant_risk_limit_used", "How much of the limit is in use (same unit as the limit)",
              lim.get("used"), {"limit": lim["name"]})
    for a in snap.get("agents") or []:
        gauge("hlquant_agent_alive", "1 while the agent's heartbeat is current", int(bool(a.get("alive"))),
              {"agent": a["name"]})
        gauge("hlquant_agent_heartbeat_age_seconds", "Time since the agent's last heartbeat",
              a.get("beat_age_s"), {"agent": a["name"]})
    feed = snap.get("feed") or {}
    gauge("hlquant_feed_last_event_age_seconds", "Time since the last market event",
          feed.get("last_event_age_s"))
    for q, v in ((feed.get("lag_ms") or {}).items()):
        if q in ("p50", "p99"):
            gauge("hlquant_feed_lag_quantile_seconds", "Feed lag quantile over the recent window",
                  None if v is None else v / 1000.0, {"quantile": "0.5" if q == "p50" else "0.99"})
    router = snap.get("router") or {}
    for q, v in ((router.get("ack_latency_ms") or {}).items()):
        if q in ("p50", "p99"):
            gauge("hlquant_decision_to_ack_quantile_seconds", "Decision-to-ack quantile over the recent window",
                  None if v is None else v / 1000.0, {"quantile": "0.5" if q == "p50" else "0.99"})
    for k, v in (router.get("budget") or {}).items():
        gauge("hlquant_router_budget", "Rate budget left (tokens) and its size", v, {"budget": k})

    def counter(name: str, doc: str, items: Mapping[str, Any], label: str | None = None) -> None:
        c = CounterMetricFamily(name, doc, labels=[label] if label else [])
        for key, v in items.items():
            if v is not None:
                c.add_metric([str(key)] if label else [], float(v))
        out.append(c)

    counter("hlquant_risk_decisions", "Risk decisions by code", risk.get("decisions") or {}, "code")
    counter("hlquant_venue_rejections", "Orders the venue refused, by error code",
            risk.get("venue_rejections") or {}, "code")
    counter("hlquant_fills", "Fills applied to the portfolio", {"": snap.get("fills_total", 0)})
    counter("hlquant_feed_reconnects", "WebSocket reconnects", {"": feed.get("reconnects", 0)})
    counter("hlquant_feed_gaps", "Feed gaps (a reconnect after data flowed)", {"": feed.get("gaps", 0)})
    counter("hlquant_feed_messages", "WebSocket messages received", {"": feed.get("messages", 0)})
    counter("hlquant_market_events", "Market events applied, by kind", feed.get("events") or {}, "kind")
    counter("hlquant_router_orders", "Router outcomes (sent, rejected, filled, ...)",
            {k: v for k, v in (router.get("stats") or {}).items() if isinstance(v, (int, float))}, "outcome")
    counter("hlquant_audit_records", "Audit records written, by kind", snap.get("audit_counts") or {}, "kind")
    return out
