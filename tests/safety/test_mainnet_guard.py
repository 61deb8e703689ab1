"""The mainnet guard (issue 11, item 2): whether an endpoint is mainnet comes from the
endpoint itself, the signature's chain always matches it, and mainnet needs
``live.confirm_mainnet=true``."""

from __future__ import annotations

import json

import pytest

from hlquant.core.errors import ConfigError
from hlquant.hyperliquid.endpoints import Endpoints, is_mainnet_url, resolve_endpoints
from hlquant.hyperliquid.exchange import ExchangeClient
from hlquant.hyperliquid.signing import Signer, recover_l1_signer

KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"


def test_testnet_label_on_a_mainnet_url_is_refused_without_confirmation():
    with pytest.raises(ConfigError, match="confirm_mainnet"):
        resolve_endpoints({"network": "testnet", "url": "https://api.hyperliquid.xyz"})


@pytest.mark.parametrize("url, mainnet", [
    ("https://api.hyperliquid.xyz", True), ("https://api.hyperliquid.xyz/", True),
    ("https://my-node.example.com:3001", True), ("https://api.hyperliquid-testnet.xyz.evil.io", True),
    ("https://api.hyperliquid-testnet.xyz", False), ("http://127.0.0.1:8765", False),
    ("http://localhost:8765", False), ("http://[::1]:8765", False), ("http://127.5.6.7", False),
])
def test_mainnet_is_derived_from_the_host(url, mainnet):
    assert is_mainnet_url(url) is mainnet


def test_defaults_and_confirmation():
    assert resolve_endpoints({}) == Endpoints("https://api.hyperliquid-testnet.xyz",
                                              "wss://api.hyperliquid-testnet.xyz/ws", False)
    with pytest.raises(ConfigError):
        resolve_endpoints({"network": "mainnet"})
    with pytest.raises(ConfigError):  # a mainnet WebSocket with a testnet REST URL is mainnet too
        resolve_endpoints({"url": "https://api.hyperliquid-testnet.xyz", "ws_url": "wss://api.hyperliquid.xyz/ws"})
    with pytest.raises(ConfigError):
        resolve_endpoints({"network": "devnet"})
    ep = resolve_endpoints({"network": "mainnet", "confirm_mainnet": True})
    assert ep.mainnet and ep.url == "https://api.hyperliquid.xyz" and ep.ws_url == "wss://api.hyperliquid.xyz/ws"


class _Captured(Exception):
    pass


def signed_body(client: ExchangeClient) -> dict:
    """The body the client would send, captured instead of sent."""
    box = {}

    def post(url, json=None, timeout=None):  # noqa: A002 (requests' own keyword)
        box["body"] = json
        raise _Captured

    client.session.post = post
    with pytest.raises(_Captured):
        client.post_action({"type": "scheduleCancel"})
    return box["body"]


def signer_under(body: dict, mainnet: bool) -> str:
    return recover_l1_signer(body["action"], body["vaultAddress"], body["nonce"], body.get("expiresAfter"),
                             mainnet, body["signature"])


def test_confirmed_mainnet_url_signs_for_mainnet_whatever_the_label():
    ep = resolve_endpoints({"network": "testnet", "url": "https://api.hyperliquid.xyz", "confirm_mainnet": True})
    assert ep.mainnet
    signer = Signer(KEY)
    body = signed_body(ExchangeClient(signer, {}, base_url=ep))
    assert signer_under(body, mainnet=True) == signer.address
    assert signer_under(body, mainnet=False) != signer.address
    json.dumps(body)  # a plain JSON body


@pytest.mark.parametrize("url, mainnet", [("https://api.hyperliquid.xyz", True),
                                          ("https://proxy.example.net", True),
                                          ("https://api.hyperliquid-testnet.xyz", False),
                                          ("http://127.0.0.1:8765", False)])
def test_the_exchange_client_signs_for_the_chain_of_its_url(url, mainnet):
    signer = Signer(KEY)
    client = ExchangeClient(signer, {}, base_url=url)
    assert client.is_mainnet is mainnet
    assert signer_under(signed_body(client), mainnet) == signer.address
