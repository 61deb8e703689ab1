"""Which exchange an endpoint is, decided from the endpoint itself.

The chain a request is signed for ("a" mainnet / "b" testnet in the L1
phantom agent, "Mainnet"/"Testnet" in user-signed actions) must match the
endpoint it goes to, and mainnet must be asked for explicitly. So the
network is never taken from a label: any host that is not loopback and not
Hyperliquid's testnet host is mainnet (a proxy, a node, a typo of the
testnet name: all treated as real money), and ``resolve_endpoints`` refuses
it unless ``live.confirm_mainnet`` is true.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from hlquant.core.errors import ConfigError

MAINNET_URL = "https://api.hyperliquid.xyz"
TESTNET_URL = "https://api.hyperliquid-testnet.xyz"
TESTNET_HOSTS = frozenset({"api.hyperliquid-testnet.xyz"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


@dataclass(frozen=True)
class Endpoints:
    """REST base URL, WebSocket URL, and whether they are mainnet (what signatures use)."""

    url: str
    ws_url: str
    mainnet: bool


def is_loopback(host: str) -> bool:
    h = host.strip("[]").lower()
    if h in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def is_mainnet_url(url: str) -> bool:
    """True unless ``url``'s host is loopback or Hyperliquid's testnet host."""
    host = (urlparse(url).hostname or "").lower()
    if not host:
        return True  # unparseable: assume the worst
    return not (is_loopback(host) or host in TESTNET_HOSTS)


def ws_url_for(url: str) -> str:
    """The WebSocket URL the SDK derives from a REST base URL (``http`` -> ``ws``, + ``/ws``)."""
    return "ws" + url[len("http"):] + "/ws"


def resolve_endpoints(live: Mapping[str, Any]) -> Endpoints:
    """Endpoints for the ``live.*`` config block.

    ``live.url`` (and ``live.ws_url``) when given, else the URL of ``live.network``
    (``testnet`` default, or ``mainnet``). Mainnet is derived from the URLs, never
    from ``network``; it needs ``live.confirm_mainnet=true``. Raises ``ConfigError``."""
    network = str(live.get("network") or "testnet")
    if live.get("url"):
        url = str(live["url"]).rstrip("/")
        if urlparse(url).scheme not in ("http", "https"):
            raise ConfigError(f"live.url={url!r} must be an http(s) URL")
    elif network == "mainnet":
        url = MAINNET_URL
    elif network == "testnet":
        url = TESTNET_URL
    else:
        raise ConfigError(f"live.network={network!r} must be testnet or mainnet (or give live.url)")
    ws = str(live.get("ws_url") or ws_url_for(url))
    mainnet = is_mainnet_url(url) or is_mainnet_url(ws)
    if mainnet and not live.get("confirm_mainnet"):
        where = url if is_mainnet_url(url) else ws
        raise ConfigError(f"{where} is Hyperliquid mainnet (real money): set live.confirm_mainnet=true "
                          f"to trade on it (live.network={network!r} does not decide this, the URL does)")
    return Endpoints(url, ws, mainnet)
