"""A market that happens now: trades and L2 books pushed to the fake exchange at wall-clock time.

Replaying history at N x real time stamps events in the future of the session's wall
clock; monitoring, latency and parity tests need events whose exchange time *is* now.
``RealtimeMarket`` publishes, every ``step_s`` seconds, one trade and one L2 book per
symbol around a seeded price path (a sine wave of ``period_s`` plus noise: a trend
follower flips on it several times a second), stamped with the current time.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from hlquant.core.events import BookSnapshot, Side, Trade

BASE = {"BTC": 90_000.0, "ETH": 3_000.0, "SOL": 150.0}


class RealtimeMarket:
    def __init__(self, fx: Any, symbols: tuple[str, ...] = ("BTC",), step_s: float = 0.02,
                 period_s: float = 1.0, amplitude: float = 0.002, noise: float = 0.0002, seed: int = 7,
                 wave: str = "sine") -> None:
        """``wave="square"``: the price jumps between two levels every half period (no noise
        unless asked): a trend follower buys every high and sells every low, so it loses."""
        self.fx, self.symbols, self.step_s, self.wave = fx, symbols, step_s, wave
        self.period_s, self.amplitude, self.noise = period_s, amplitude, noise
        self.rng = np.random.default_rng(seed)
        self.stop = threading.Event()
        self.published = 0
        self.thread = threading.Thread(target=self._run, name="realtime-market", daemon=True)

    def start(self) -> RealtimeMarket:
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)

    def _run(self) -> None:
        t0 = time.monotonic()
        i = 0
        while not self.stop.is_set():
            now = int(time.time() * 1000)
            phase = 2 * math.pi * (time.monotonic() - t0) / self.period_s
            for s in self.symbols:
                base = BASE[s]
                level = math.sin(phase) if self.wave == "sine" else (1.0 if math.sin(phase) >= 0 else -1.0)
                px = base * (1 + self.amplitude * level + self.noise * self.rng.standard_normal())
                tick = 1.0 if base > 10_000 else 0.1 if base > 1_000 else 0.01
                mid = round(px / tick) * tick
                bids = [(round(mid - (k + 1) * tick, 6), 5.0 + k) for k in range(5)]
                asks = [(round(mid + (k + 1) * tick, 6), 5.0 + k) for k in range(5)]
                self.fx.server.publish(BookSnapshot(now, now, s, bids, asks))
                side = Side.BUY if i % 2 else Side.SELL
                self.fx.server.publish(Trade(now, now, s, side, mid, 0.01, tid=i + 1))
                self.published += 2
            i += 1
            self.stop.wait(self.step_s)


def wait_until(cond: Callable[[], Any], timeout_s: float, what: str, poll_s: float = 0.02) -> Any:
    """Poll ``cond`` until truthy or fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def subscribed(fx: Any, coin: str = "btc", channel: str = "trades") -> bool:
    """The session's WebSocket has subscribed to ``channel`` of ``coin``."""
    return any(f"{channel}:{coin}" in subs for subs in list(fx.server._subs.values()))


def trend_strategy(symbols: tuple[str, ...] = ("BTC",), span: int = 10, size_usd: float = 3_000.0) -> dict:
    """A trade-triggered trend follower (``tests.live.parity_agents.TradeTrend``)."""
    return {"name": "trend", "agents": [{"cls": "tests.live.parity_agents:TradeTrend", "name": "trend",
                                         "symbols": list(symbols), "trigger": "trade",
                                         "params": {"span": span, "size_usd": size_usd}}]}


class SessionThread:
    """``run_session`` on its own event loop in a thread (the test drives a browser or
    the exchange meanwhile); ``stop()`` ends it cleanly and returns its result."""

    def __init__(self, cfg: dict, mode: str, out_dir: Any, duration_s: float | None = None) -> None:
        import asyncio

        self.cfg, self.mode, self.out_dir, self.duration_s = cfg, mode, out_dir, duration_s
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, name="session", daemon=True)

    def _run(self) -> None:
        import asyncio

        from hlquant.live.session import run_session

        async def main() -> Any:
            self.loop = asyncio.get_running_loop()
            self.stop_event = asyncio.Event()
            self.started.set()
            return await run_session(self.cfg, self.mode, out_dir=self.out_dir, duration_s=self.duration_s,
                                     stop=self.stop_event)

        try:
            self.result = asyncio.run(main())
        except BaseException as e:  # surfaced by stop()
            self.error = e
            self.started.set()

    def start(self) -> SessionThread:
        self.thread.start()
        self.started.wait(30)
        return self

    def stop(self, timeout_s: float = 60.0) -> Any:
        if self.loop is not None and self.stop_event is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout_s)
        if self.error is not None:
            raise self.error
        assert not self.thread.is_alive(), "session did not stop"
        return self.result
