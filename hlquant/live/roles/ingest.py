"""Ingest process: the one market-data connection, publishing normalized events on the bus.

Every market event of the traded symbols goes onto ``<Kind>:{SYM}`` (one
stream per kind and symbol, msgpack), read by the stream processors, the
risk process and the storage writer. However many agents run, the exchange
sees one market-data connection.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from hlquant.bus.redis_state import RedisStreamBus
from hlquant.hyperliquid.info import InfoClient
from hlquant.hyperliquid.ws import HyperliquidFeed, market_subscriptions
from hlquant.live.roles.common import role_spec, stop_on_signals


def run_ingest(cfg: Any, stop: threading.Event | None = None) -> dict[str, Any]:
    spec, r = role_spec(cfg)
    live = spec.live
    ep = spec.endpoints()
    url, ws_url = ep.url, ep.ws_url
    bus = RedisStreamBus(r, live.namespace, maxlen=live.stream_maxlen)
    feed = HyperliquidFeed(ws_url, market_subscriptions(spec.symbols, candle_interval=live.candle_interval),
                           info=InfoClient(url), bus=bus)
    stop = stop_on_signals(stop)

    async def main() -> int:
        astop = asyncio.Event()
        loop = asyncio.get_running_loop()
        threading.Thread(target=lambda: (stop.wait(), loop.call_soon_threadsafe(astop.set)),
                         daemon=True).start()
        return await feed.run(stop=astop)

    n = asyncio.run(main())
    return {"events": n, "feed": dict(feed.counters)}
