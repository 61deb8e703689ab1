"""Ingest process: the one market-data connection, publishing normalized events on the bus.

Every market event of the traded symbols goes onto ``<Kind>:{SYM}`` (one
stream per kind and symbol, msgpack), read by the stream processors, the
risk process and the storage writer. However many agents run, the exchange
sees one market-data connection. The run's other connectors (the
``connectors`` config group) run here too: their ``Signal`` events go onto
``Signal:{SYM}`` (``Signal`` for a market-wide series), which the agent
processes write into the feature store.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from hlquant.bus.redis_state import RedisStreamBus
from hlquant.config.connectors import live_sources
from hlquant.connectors.base import merge_events, topic_for
from hlquant.hyperliquid.info import InfoClient
from hlquant.hyperliquid.ws import HyperliquidFeed, market_subscriptions
from hlquant.live.roles.common import Outage, role_spec, stop_on_signals


def run_ingest(cfg: Any, stop: threading.Event | None = None) -> dict[str, Any]:
    spec, r = role_spec(cfg)
    live = spec.live
    ep = spec.endpoints()
    url, ws_url = ep.url, ep.ws_url
    bus = RedisStreamBus(r, live.namespace, maxlen=live.stream_maxlen)
    feed = HyperliquidFeed(ws_url, market_subscriptions(spec.symbols, candle_interval=live.candle_interval),
                           info=InfoClient(url))
    sources = live_sources(spec, spec.mode, feed, feed.info)
    stop = stop_on_signals(stop)
    outage = Outage("ingest", stop)
    counts = {"published": 0, "dropped_redis_down": 0}

    async def main() -> None:
        astop = asyncio.Event()
        loop = asyncio.get_running_loop()
        threading.Thread(target=lambda: (stop.wait(), loop.call_soon_threadsafe(astop.set)),
                         daemon=True).start()
        events = feed.events(astop)
        if sources:
            events = merge_events([events, *(c.events(astop) for c in sources)])
        async for ev in events:
            try:  # market data cannot wait for Redis: while it is down events are dropped, counted
                bus.publish(topic_for(ev), ev)
                counts["published"] += 1
                outage.up()
            except outage.errors as e:
                counts["dropped_redis_down"] += 1
                outage.note_down(e, "dropping market events until it is back")

    asyncio.run(main())
    return {**counts, "outages": outage.outages, "feed": dict(feed.counters),
            "connectors": {c.name: dict(c.counters) for c in sources}}
