"""Run the fake exchange in a background thread (tests, notebooks, paper runs)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from eth_account import Account

from hlquant.fakeexchange.server import FakeExchange


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningFakeExchange:
    server: FakeExchange
    url: str
    ws_url: str
    master: str
    master_key: str
    agent: str
    agent_key: str
    loop: asyncio.AbstractEventLoop

    def call(self, coro, timeout: float = 30.0) -> Any:
        """Run a coroutine on the server's loop (e.g. ``server.drop_connections()``)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def replay(self, events, speed: float = 0.0, rebase: bool = True) -> Any:
        """Start replaying events in the background; returns a concurrent Future."""
        return asyncio.run_coroutine_threadsafe(self.server.replay(events, speed, rebase), self.loop)


@contextlib.contextmanager
def running_fake_exchange(port: int | None = None, cash: float = 100_000.0,
                          **kw: Any) -> Iterator[RunningFakeExchange]:
    """A fake exchange on 127.0.0.1 with one funded master account and one approved agent."""
    master = Account.create()
    agent = Account.create()
    fx = FakeExchange(accounts={master.address: cash}, agents={agent.address: master.address}, **kw)
    port = port or free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner_box: dict[str, web.AppRunner] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(fx.app(), handle_signals=False)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        runner_box["r"] = runner
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    th = threading.Thread(target=run, name="fake-exchange", daemon=True)
    th.start()
    if not started.wait(15):
        raise RuntimeError("fake exchange did not start")
    try:
        yield RunningFakeExchange(fx, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws",
                                  master.address, master.key.hex(), agent.address, agent.key.hex(), loop)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        th.join(15)
