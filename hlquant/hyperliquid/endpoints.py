"""Which Hyperliquid endpoint a session talks to (REST base URL and WebSocket URL)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hlquant.core.errors import ConfigError
from hlquant.hyperliquid.info import MAINNET_URL, TESTNET_URL


def endpoints(live: Mapping[str, Any]) -> tuple[str, str]:
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
