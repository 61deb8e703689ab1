"""``python -m hlquant.fakeexchange``: serve a fake Hyperliquid on loopback.

    python -m hlquant.fakeexchange --port 8765 --speed 60 --keys-out /tmp/fx-keys.json

Replays the bundled sample (timestamps rebased to now) at ``--speed`` x real
time, with one funded master account and one approved agent. Their keys are
throwaway test keys, written to ``--keys-out`` (mode 0600), never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
from pathlib import Path

from aiohttp import web
from eth_account import Account

from hlquant.fakeexchange.server import FakeExchange


async def serve(args: argparse.Namespace) -> None:
    master, agent = Account.create(), Account.create()
    fx = FakeExchange(accounts={master.address: args.cash}, agents={agent.address: master.address},
                      idle_timeout_s=args.idle_timeout)
    runner = web.AppRunner(fx.app())
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    keys = {"url": f"http://{args.host}:{args.port}", "master": master.address, "agent": agent.address,
            "master_key": master.key.hex(), "agent_key": agent.key.hex()}
    out = Path(args.keys_out)
    out.write_text(json.dumps(keys, indent=2))
    os.chmod(out, 0o600)
    logging.info("fake Hyperliquid on %s (master %s, agent %s; keys in %s)", keys["url"], master.address,
                 agent.address, out)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if args.data != "none":
        from hlquant.connectors.replay import ReplayConnector
        from hlquant.data.loaders import load

        task = asyncio.create_task(fx.replay(iter(ReplayConnector(load(args.data))), args.speed, stop=stop))
    else:
        task = None
    await stop.wait()
    if task is not None:
        task.cancel()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--speed", type=float, default=60.0, help="replay speed (x real time; 0 = flat out)")
    ap.add_argument("--data", default="sample", help="'sample', a data directory, or 'none'")
    ap.add_argument("--cash", type=float, default=100_000.0)
    ap.add_argument("--idle-timeout", type=float, default=60.0)
    ap.add_argument("--keys-out", default="fake-exchange-keys.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
