"""Paper and live sessions: the backtest's strategy, risk and router on live data.

``mode=paper``: market data from Hyperliquid's WebSocket (or the fake
exchange), orders matched by the SimVenue. ``mode=live``: the same plus the
HyperliquidVenue (signed orders, fills from the user channels) after the
pre-flight check. The strategy file and its config are unchanged from the
backtest; only ``mode`` differs.

Secrets: the signer key comes from ``live.key_env`` (default
``HLQUANT_PRIVATE_KEY``) or ``live.key_file``; it never enters the config, the
audit log or the session files.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hlquant.audit.log import AuditLog, redact
from hlquant.config.build import build_agents, make_dataclass, to_dict
from hlquant.core.clock import WallClock
from hlquant.core.errors import ConfigError
from hlquant.core.events import CancelAck, Fill, FundingPayment, OrderAck
from hlquant.hyperliquid.info import MAINNET_URL, TESTNET_URL, InfoClient
from hlquant.hyperliquid.ws import HyperliquidFeed, market_subscriptions, user_subscriptions
from hlquant.live.engine import LiveEngine
from hlquant.risk.engine import RiskConfig
from hlquant.router.router import RouterConfig
from hlquant.venues.sim import SimVenue, SimVenueConfig

log = logging.getLogger(__name__)
USER_EVENTS = (Fill, OrderAck, CancelAck, FundingPayment)


@dataclass
class SessionResult:
    engine: LiveEngine
    feed: HyperliquidFeed
    out_dir: Path | None
    status: dict[str, Any]


def endpoints(live: dict[str, Any]) -> tuple[str, str]:
    """(REST base URL, WebSocket URL) for ``live.network`` or an explicit ``live.url``."""
    network = live.get("network", "testnet")
    if live.get("url"):
        url = str(live["url"]).rstrip("/")
    elif network == "mainnet":
        if not live.get("confirm_mainnet"):
            raise ConfigError("mainnet needs live.confirm_mainnet=true")
        url = MAINNET_URL
    elif network == "testnet":
        url = TESTNET_URL
    else:
        raise ConfigError(f"live.network={network!r} needs live.url")
    ws = live.get("ws_url") or ("ws" + url[len("http"):] + "/ws")
    return url, ws


def build_session(cfg: Any, mode: str, out_dir: str | Path | None = None) -> tuple[LiveEngine, HyperliquidFeed]:
    c = to_dict(cfg)
    live = c.get("live") or {}
    url, ws_url = endpoints(live)
    agents = build_agents(c["strategy"])
    symbols = sorted({s for a in agents for s in a.symbols})
    info = InfoClient(url)
    assets = info.assets()
    missing = [s for s in symbols if s not in assets]
    if missing:
        raise ConfigError(f"symbols {missing} are not listed on {url}")
    risk = make_dataclass(RiskConfig, c.get("risk", {}), "risk")
    router = make_dataclass(RouterConfig, c.get("router", {}), "router")
    venue_cfg = make_dataclass(SimVenueConfig, c.get("venue", {}), "venue")
    staleness = (c.get("features") or {}).get("staleness")
    session = uuid.uuid4().hex[:12]
    audit_dir = Path(out_dir) / "audit" if out_dir is not None else None
    audit = AuditLog(audit_dir, session, flush_every=int(live.get("audit_flush_every", 200)))
    subs = market_subscriptions(symbols, candle_interval=live.get("candle_interval", "1m"))
    if mode == "paper":
        venue: Any = SimVenue({s: assets[s] for s in symbols}, venue_cfg, clock=WallClock())
        dms = 0
    elif mode == "live":
        from hlquant.hyperliquid.exchange import ExchangeClient
        from hlquant.hyperliquid.signing import Signer
        from hlquant.hyperliquid.venue import HyperliquidVenue

        if not live.get("account_address"):
            raise ConfigError("live.account_address (the master account) is required")
        signer = Signer.from_env(live.get("key_env", "HLQUANT_PRIVATE_KEY"), live.get("key_file"),
                                 account_address=live["account_address"])
        ex = ExchangeClient(signer, {s: assets[s] for s in symbols}, base_url=url,
                            limiter=info.limiter)
        venue = HyperliquidVenue(info, ex, symbols)
        subs += user_subscriptions(signer.account_address)
        dms = int(live.get("dead_mans_switch_ms", 60_000))
    else:
        raise ConfigError(f"unknown mode {mode!r} (paper, live)")
    engine = LiveEngine(agents, venue, audit=audit, risk=risk, router=router, staleness=staleness,
                        initial_cash=venue_cfg.initial_cash, dead_mans_switch_ms=dms)
    feed = HyperliquidFeed(ws_url, subs, info=info)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "session.json").write_text(json.dumps(
            {"session": session, "mode": mode, "url": url, "config": redact(c)}, indent=2, default=str))
    return engine, feed


async def run_session(cfg: Any, mode: str, out_dir: str | Path | None = None,
                      duration_s: float | None = None, stop: asyncio.Event | None = None,
                      handle_signals: bool = False) -> SessionResult:
    """Run until ``duration_s`` elapses, ``stop`` is set, or SIGINT/SIGTERM (when handled)."""
    c = to_dict(cfg)
    live = c.get("live") or {}
    engine, feed = build_session(c, mode, out_dir)
    stop = stop or asyncio.Event()
    is_live = mode == "live"
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    if duration_s:
        loop.call_later(duration_s, stop.set)
    on_user = getattr(engine.venue, "on_exchange_event", None)
    engine.start()

    reconcile_s = float(live.get("reconcile_s", 30.0))

    async def ticker() -> None:
        last_rec = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.25)
            engine.tick()
            if is_live and reconcile_s and time.monotonic() - last_rec > reconcile_s:
                last_rec = time.monotonic()
                try:  # positions vs clearinghouseState; mismatches are audited and resolved
                    await asyncio.to_thread(engine.reconcile, 1e-6)
                    refresh = getattr(engine.venue, "refresh_budget", None)
                    if refresh is not None:  # the address budget, from the exchange's own numbers
                        await asyncio.to_thread(refresh)
                except Exception as e:
                    log.warning("reconcile failed: %s", e)

    tick_task = asyncio.create_task(ticker())
    t0 = time.monotonic()
    try:
        async for ev in feed.events(stop):
            if isinstance(ev, USER_EVENTS):
                if is_live and on_user is not None:
                    on_user(ev)
                continue
            engine.on_event(ev)
    finally:
        tick_task.cancel()
        engine.shutdown(cancel_open=bool(live.get("cancel_on_shutdown", True)))
    status = engine.status()
    status.update(feed=dict(feed.counters), seconds=time.monotonic() - t0, mode=mode)
    if is_live:
        try:
            status["reconcile"] = engine.portfolio.reconcile(engine.venue.positions(), tol=1e-6)
        except Exception as e:  # reconciliation is reported, never fatal at shutdown
            status["reconcile_error"] = str(e)
    if out_dir is not None:
        (Path(out_dir) / "status.json").write_text(json.dumps(status, indent=2, default=str))
    return SessionResult(engine, feed, Path(out_dir) if out_dir is not None else None, status)
