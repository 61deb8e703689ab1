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
import dataclasses
import json
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hlquant.audit.log import redact
from hlquant.config.build import to_dict
from hlquant.config.spec import KernelSpec
from hlquant.core.errors import ConfigError
from hlquant.core.events import CancelAck, Fill, FundingPayment, OrderAck
from hlquant.hyperliquid.info import InfoClient
from hlquant.hyperliquid.ws import HyperliquidFeed, market_subscriptions, user_subscriptions
from hlquant.kernel import Role, build_kernel
from hlquant.live.engine import LiveEngine

log = logging.getLogger(__name__)
USER_EVENTS = (Fill, OrderAck, CancelAck, FundingPayment)


@dataclass
class SessionResult:
    engine: LiveEngine
    feed: HyperliquidFeed
    out_dir: Path | None
    status: dict[str, Any]


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
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "session.json").write_text(json.dumps(
            {"session": kernel.session, "mode": mode, "url": url, "config": redact(c)}, indent=2,
            default=str))
    return engine, feed


async def run_session(cfg: Any, mode: str, out_dir: str | Path | None = None,
                      duration_s: float | None = None, stop: asyncio.Event | None = None,
                      handle_signals: bool = False) -> SessionResult:
    """Run until ``duration_s`` elapses, ``stop`` is set, or SIGINT/SIGTERM (when handled)."""
    c = to_dict(cfg)
    engine, feed = build_session(c, mode, out_dir)
    live = dataclasses.asdict(engine.kernel.spec.live)
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
        (Path(out_dir) / "status.json").write_text(json.dumps(redact(status), indent=2, default=str))
    return SessionResult(engine, feed, Path(out_dir) if out_dir is not None else None, status)
