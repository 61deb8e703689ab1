"""Supervisor: keep live components running, restart crashes with backoff, report health.

Supervises subprocesses (``live.topology=processes``: one per component) or
asyncio tasks (``single``). A child that exits unexpectedly is restarted
after an exponential backoff (reset once it has stayed up for
``stable_s``); ``health()`` reports each child's state, pid, restarts and
last exit code, and is written to ``health.json`` on every change. A clean
stop sends SIGTERM to children in reverse start order (agents first, routers
last, so shutdown cancels still have a router to go through).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    start: Callable[[], Any]  # -> subprocess.Popen, or a coroutine factory for tasks
    kind: str = "process"
    handle: Any = None
    restarts: int = 0
    state: str = "new"
    last_exit: int | None = None
    started_at: float = 0.0
    backoff_s: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


class Supervisor:
    def __init__(self, health_path: str | Path | None = None, backoff_base_s: float = 0.5,
                 backoff_max_s: float = 30.0, stable_s: float = 30.0, poll_s: float = 0.2) -> None:
        self.children: dict[str, Child] = {}
        self.health_path = Path(health_path) if health_path else None
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.stable_s, self.poll_s = stable_s, poll_s
        self.stopping = False

    def add_process(self, name: str, start: Callable[[], subprocess.Popen]) -> None:
        self.children[name] = Child(name, start, "process")

    def add_task(self, name: str, factory: Callable[[], Awaitable[Any]]) -> None:
        self.children[name] = Child(name, factory, "task")

    # --- lifecycle -----------------------------------------------------------------
    def _launch(self, c: Child) -> None:
        c.handle = c.start() if c.kind == "process" else asyncio.ensure_future(c.start())
        c.state, c.started_at = "running", time.monotonic()
        self._write()

    def _exit_code(self, c: Child) -> int | None:
        if c.kind == "process":
            return c.handle.poll()
        if not c.handle.done():
            return None
        if c.handle.cancelled():
            return -1
        return 1 if c.handle.exception() is not None else 0

    async def run(self, stop: asyncio.Event) -> None:
        for c in self.children.values():
            self._launch(c)
        restart_at: dict[str, float] = {}
        while not stop.is_set():
            now = time.monotonic()
            for c in self.children.values():
                if c.state == "running":
                    code = self._exit_code(c)
                    if code is None:
                        if c.backoff_s and now - c.started_at > self.stable_s:
                            c.backoff_s = 0.0  # stayed up: forget past crashes
                        continue
                    c.last_exit = code
                    c.history.append({"exit": code, "at": time.time(), "uptime_s": now - c.started_at})
                    c.backoff_s = min(self.backoff_max_s, max(self.backoff_base_s, c.backoff_s * 2))
                    c.state = "backoff"
                    restart_at[c.name] = now + c.backoff_s
                    log.warning("%s exited with %s; restarting in %.1fs", c.name, code, c.backoff_s)
                    self._write()
                elif c.state == "backoff" and now >= restart_at.get(c.name, 0):
                    c.restarts += 1
                    self._launch(c)
            try:
                await asyncio.wait_for(stop.wait(), self.poll_s)
            except TimeoutError:
                pass
        await self.shutdown()

    async def shutdown(self, timeout_s: float = 20.0) -> None:
        self.stopping = True
        for c in reversed(list(self.children.values())):
            if c.state != "running":
                continue
            if c.kind == "process" and c.handle.poll() is None:
                c.handle.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + timeout_s
                while c.handle.poll() is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                if c.handle.poll() is None:
                    c.handle.kill()
                c.last_exit = c.handle.poll()
            elif c.kind == "task":
                c.handle.cancel()
            c.state = "stopped"
        self._write()

    def health(self) -> dict[str, Any]:
        out = {}
        for c in self.children.values():
            pid = getattr(c.handle, "pid", None) if c.kind == "process" else None
            out[c.name] = {"state": c.state, "pid": pid, "restarts": c.restarts, "last_exit": c.last_exit,
                           "uptime_s": round(time.monotonic() - c.started_at, 3) if c.state == "running" else 0.0,
                           "backoff_s": c.backoff_s}
        return out

    def _write(self) -> None:
        if self.health_path is not None:
            tmp = self.health_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"time": time.time(), "children": self.health()}, indent=2))
            tmp.replace(self.health_path)
