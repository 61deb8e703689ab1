"""The supervisor restarts crashed children with growing backoff and reports health."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from hlquant.live.supervisor import Supervisor


def test_restarts_crashing_process_with_backoff_and_reports_health(tmp_path):
    sup = Supervisor(tmp_path / "health.json", backoff_base_s=0.1, backoff_max_s=0.4, poll_s=0.02)
    sup.add_process("crasher", lambda: subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"]))
    sup.add_process("steady", lambda: subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
    state = {"n": 0}

    async def flaky():
        state["n"] += 1
        if state["n"] < 3:
            raise RuntimeError("boom")
        await asyncio.sleep(60)

    sup.add_task("flaky-task", flaky)

    async def main():
        stop = asyncio.Event()

        async def stop_when_seen() -> None:  # a condition with a deadline, not a fixed time
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while loop.time() < deadline and not (
                    sup.children["crasher"].restarts >= 3 and sup.children["flaky-task"].restarts >= 2):
                await asyncio.sleep(0.02)
            stop.set()

        waiter = asyncio.create_task(stop_when_seen())
        await sup.run(stop)
        await waiter

    asyncio.run(main())
    h = sup.health()
    c = sup.children["crasher"]
    assert c.restarts >= 3
    assert [x["exit"] for x in c.history][:3] == [3, 3, 3]
    assert max(h["crasher"]["backoff_s"], 0.4) == 0.4  # capped
    assert sup.children["steady"].restarts == 0 and h["steady"]["state"] == "stopped"
    assert sup.children["flaky-task"].restarts == 2 and state["n"] == 3
    on_disk = json.loads((tmp_path / "health.json").read_text())
    assert on_disk["children"]["steady"]["state"] == "stopped"
