"""Paper and live sessions: the backtest's strategy, risk and router on live data.

``mode=paper``: market data from Hyperliquid's WebSocket (or the fake
exchange), orders matched by the SimVenue. ``mode=live``: the same plus the
HyperliquidVenue (signed orders, fills from the user channels) after the
pre-flight check. The strategy file and its config are unchanged from the
backtest; only ``mode`` differs.

While it runs a session serves its monitoring page and ``/metrics`` (``monitor.*``,
``hlquant.live.monitor``), prints a status line and rewrites ``status.json`` every
``live.status_every_s`` seconds (``hlquant.live.status``), and records every market
event it applies under ``market/`` (``hlquant.live.recording``). When it ends it
writes the same report as a backtest from its own fills, funding and equity
(``metrics.json``, ``report.png``, ``report.html``, fills/funding/equity Parquet),
the decision-to-ack latencies it measured (``latency.csv``) and the final
``status.json``; ``hlquant parity RUN_DIR`` compares the session with its backtest.

Secrets: the signer key comes from ``live.key_env`` (default
``HLQUANT_PRIVATE_KEY``) or ``live.key_file``; it never enters the config, the
audit log or the session files.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import json
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hlquant.config.build import to_dict
from hlquant.config.connectors import live_sources
from hlquant.config.spec import KernelSpec
from hlquant.connectors.base import merge_events
from hlquant.core.errors import ConfigError
from hlquant.core.events import (
    BBO,
    BookSnapshot,
    CancelAck,
    Candle,
    Fill,
    FundingPayment,
    FundingRate,
    MarkPrice,
    OrderAck,
    Side,
    Signal,
    Trade,
)
from hlquant.core.market import dispatch_market
from hlquant.core.secrets import redact
from hlquant.features.kernels import parse_specs
from hlquant.features.pipeline import FeatureProcessor
from hlquant.features.store import InMemoryFeatureStore, StalenessRules
from hlquant.hyperliquid.info import InfoClient
from hlquant.hyperliquid.ws import HyperliquidFeed, market_subscriptions, user_subscriptions
from hlquant.kernel import Role, build_kernel
from hlquant.live.engine import LiveEngine
from hlquant.live.monitor import monitor_config, serving
from hlquant.live.recording import MarketRecorder
from hlquant.live.status import StatusReporter, status_line, write_json_atomic
from hlquant.live.telemetry import SessionTelemetry
from hlquant.report import artifacts_from_run, write_report

log = logging.getLogger(__name__)
USER_EVENTS = (Fill, OrderAck, CancelAck, FundingPayment)


@dataclass
class SessionResult:
    engine: LiveEngine
    feed: HyperliquidFeed
    out_dir: Path | None
    status: dict[str, Any]
    telemetry: SessionTelemetry | None = None
    files: dict[str, Path] | None = None


def build_session(cfg: Any, mode: str, out_dir: str | Path | None = None) -> tuple[LiveEngine, HyperliquidFeed]:
    c = to_dict(cfg)
    spec = KernelSpec.from_config(c, mode=mode)
    if mode not in ("paper", "live"):
        raise ConfigError(f"a session runs mode=paper or mode=live, not {mode!r}")
    live = spec.live
    ep = spec.endpoints()
    url, ws_url = ep.url, ep.ws_url
    kernel = build_kernel(spec, Role.ALL, out_dir=Path(out_dir) if out_dir is not None else None)
    engine = LiveEngine(kernel)
    subs = market_subscriptions(spec.symbols, candle_interval=live.candle_interval)
    if mode == "live":
        subs += user_subscriptions(str(live.account_address))
    feed = HyperliquidFeed(ws_url, subs, info=InfoClient(url))
    engine.sources = live_sources(spec, mode, feed, feed.info)  # the `connectors` beyond the market
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "session.json").write_text(json.dumps(
            {"session": kernel.session, "mode": mode, "url": url, "config": redact(c),
             "symbols": spec.symbols, "assets": {s: dataclasses.asdict(a) for s, a in kernel.assets.items()}},
            indent=2, default=str))
    return engine, feed


def warm_up(engine: LiveEngine) -> float:
    """Load every feature kernel before the first market event; returns the seconds it took.

    A numba kernel is loaded (or compiled) on its first call: about a second, cold. On the
    first live event that second passes between the event and the agent's decision, so the
    risk engine finds the price older than ``risk.max_price_age_ms`` and refuses the first
    decision (found by ``hlquant parity``). A throwaway processor and store take one event
    of each kind here instead; the session's own feature state is untouched."""
    k = engine.kernel
    if not k.feature_specs or not k.symbols:
        return 0.0
    t0 = time.perf_counter()
    sym = k.symbols[0]
    proc = FeatureProcessor(parse_specs(k.feature_specs), InMemoryFeatureStore(StalenessRules({})), [sym])
    for ev in (Candle(1, 1, sym, "1m", 1.0, 1.0, 1.0, 1.0, 1.0), Trade(1, 1, sym, Side.BUY, 1.0, 1.0),
               BookSnapshot(1, 1, sym, [(1.0, 1.0)], [(1.01, 1.0)]), BBO(1, 1, sym, 1.0, 1.0, 1.01, 1.0),
               FundingRate(1, 1, sym, 0.0, 0.0, 1.0), MarkPrice(1, 1, sym, 1.0, 1.0)):
        dispatch_market(ev, proc)
    return time.perf_counter() - t0


def session_artifacts(engine: LiveEngine, started_ms: int, ended_ms: int) -> Any:
    """The session's report inputs: the kernel's equity curve (bar closes) between the
    equity at the start and at the end, and the fills and funding it applied."""
    k = engine.kernel
    pf = k.portfolio
    t, eq, pos = engine.handler.curve.arrays()
    n_sym = len(k.symbols)
    if not len(t) or t[0] > started_ms:
        t = np.concatenate([[started_ms], t])
        eq = np.concatenate([[pf.initial_cash], eq])
        pos = np.vstack([np.zeros((1, n_sym)), pos])
    if t[-1] < ended_ms:
        t = np.concatenate([t, [ended_ms]])
        eq = np.concatenate([eq, [pf.equity()]])
        pos = np.vstack([pos, [[pf.notional(s) for s in k.symbols]]])
    return artifacts_from_run((t.astype(np.int64), eq, pos), k.symbols, k.fills, k.funding,
                              pf.initial_cash, k.spec.name, dict(k.spec.params))


def write_latencies(telemetry: SessionTelemetry, path: Path) -> Path:
    """Decision-to-ack latencies measured by the session (one row per order answered)."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["cloid", "intent_id", "t_decision_ms", "decision_to_ack_ms"])
        for cloid, iid, t, ms in telemetry.ack_latencies:
            w.writerow([cloid, iid, t, f"{ms:.4f}"])
    return path


async def run_session(cfg: Any, mode: str, out_dir: str | Path | None = None,
                      duration_s: float | None = None, stop: asyncio.Event | None = None,
                      handle_signals: bool = False) -> SessionResult:
    """Run until ``duration_s`` elapses, ``stop`` is set, or SIGINT/SIGTERM (when handled)."""
    c = to_dict(cfg)
    mon_cfg = monitor_config(c)
    engine, feed = build_session(c, mode, out_dir)
    log.info("feature kernels loaded in %.2fs", warm_up(engine))
    live = dataclasses.asdict(engine.kernel.spec.live)
    out = Path(out_dir) if out_dir is not None else None
    stop = stop or asyncio.Event()
    is_live = mode == "live"
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    if duration_s:
        loop.call_later(duration_s, stop.set)
    on_user = getattr(engine.venue, "on_exchange_event", None)
    started_ms = int(time.time() * 1000)
    t0 = time.monotonic()
    telemetry = SessionTelemetry(engine, feed, mode, started_ms=started_ms)
    recorder = MarketRecorder(out, engine.kernel.symbols) if out is not None else None
    monitor_url: list[str] = [""]

    def status() -> dict[str, Any]:
        st = engine.status()
        snap = telemetry.snapshot()
        st.update(feed=dict(feed.counters), seconds=time.monotonic() - t0, mode=mode,
                  session=engine.kernel.session, monitor=monitor_url[0], fills=len(engine.fills),
                  last_fill=(snap["fills"] or [None])[0], feed_lag_ms=snap["feed"]["lag_ms"],
                  decision_to_ack_ms=snap["router"]["ack_latency_ms"])
        return st

    reporter = StatusReporter(status, lambda: status_line(telemetry.snapshot()), out)
    engine.start()

    reconcile_s = float(live.get("reconcile_s", 30.0))
    status_every = float(live.get("status_every_s") or 0.0)

    async def ticker() -> None:
        last_rec = last_status = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.25)
            engine.tick()
            telemetry.sample_equity()
            if recorder is not None:
                recorder.maybe_flush()
            if status_every and time.monotonic() - last_status >= status_every:
                last_status = time.monotonic()
                reporter.report(running=True)
            if is_live and reconcile_s and time.monotonic() - last_rec > reconcile_s:
                last_rec = time.monotonic()
                try:  # positions vs clearinghouseState; mismatches are audited and resolved
                    await asyncio.to_thread(engine.reconcile, 1e-6)
                    refresh = getattr(engine.venue, "refresh_budget", None)
                    if refresh is not None:  # the address budget, from the exchange's own numbers
                        await asyncio.to_thread(refresh)
                except Exception as e:
                    log.warning("reconcile failed: %s", e)

    audit = engine.audit
    async with serving(telemetry, mon_cfg) as server:
        if server is not None:
            monitor_url[0] = server.url
        reporter.report(running=True)  # status.json from the start: where the page is, what runs
        tick_task = asyncio.create_task(ticker())
        source = feed.events(stop)
        if engine.sources:
            source = merge_events([source, *(c.events(stop) for c in engine.sources)])
        try:
            async for ev in source:
                if type(ev) is Signal:  # an external series: into the feature store at its receive time
                    engine.on_event(ev)
                    continue
                if isinstance(ev, USER_EVENTS):
                    if is_live and on_user is not None:
                        on_user(ev)
                    continue
                telemetry.on_market(ev)
                if recorder is not None:
                    recorder.record(ev, audit.seq, int(time.time() * 1000))
                engine.on_event(ev)
        finally:
            tick_task.cancel()
            try:
                engine.shutdown(cancel_open=bool(live.get("cancel_on_shutdown", True)))
            finally:
                if recorder is not None:
                    recorder.close()
    ended_ms = int(time.time() * 1000)
    files: dict[str, Path] = {}
    if out is not None:
        files["latency"] = write_latencies(telemetry, out / "latency.csv")
        try:  # the same report as a backtest, from what the session really did
            files.update(write_report(session_artifacts(engine, started_ms, ended_ms), out))
        except Exception as e:  # a failed report must not hide the session's outcome
            log.error("session report failed (%s: %s); the audit log, market/ and status.json "
                      "are complete", type(e).__name__, e)
    st = status()
    if is_live:
        try:
            st["reconcile"] = engine.portfolio.reconcile(engine.venue.positions(), tol=1e-6)
        except Exception as e:  # reconciliation is reported, never fatal at shutdown
            st["reconcile_error"] = str(e)
    st["running"] = False
    st["files"] = {k: str(v) for k, v in files.items()}
    if out is not None:
        write_json_atomic(out / "status.json", st)
    return SessionResult(engine, feed, out, st, telemetry, files)
