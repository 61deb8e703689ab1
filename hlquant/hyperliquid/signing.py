"""Hyperliquid request signing on eth-account (EIP-712), plus key handling.

Speed (issue 16.5): an L1 signature is on every order's path. eth-keys signs with
coincurve (libsecp256k1) when it is installed, 25x faster than its pure-Python
backend; and the L1 digest is computed directly (domain separator and type hash
derived once with eth-account), skipping the generic typed-data encoder that
cost more than the signature. Both are checked against eth-account's encoder and
the official SDK in tests/hyperliquid/test_signing.py.

L1 actions (order, cancel, modify, scheduleCancel, updateLeverage...) are
signed by the *agent* (API wallet) key over a "phantom agent" whose
connectionId is ``keccak(msgpack(action) || nonce || vault flag || expiresAfter)``;
user-signed actions (approveAgent) are signed by the master key under the
``HyperliquidSignTransaction`` domain. The same functions recover the signer,
which is how the fake exchange authenticates requests. Checked against the
official SDK's published known-answer vector and its own signer in tests.

Keys never enter configs or logs: ``Signer`` loads them from an environment
variable or a file and its ``repr`` shows only the address.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_keys import keys as ec
from eth_utils import keccak, to_checksum_address, to_hex

_DOMAIN_TYPES = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_ZERO = "0x0000000000000000000000000000000000000000"
USER_SIGNATURE_CHAIN_ID = "0x66eee"

APPROVE_AGENT_TYPES = [
    {"name": "hyperliquidChain", "type": "string"},
    {"name": "agentAddress", "type": "address"},
    {"name": "agentName", "type": "string"},
    {"name": "nonce", "type": "uint64"},
]


def action_hash(action: dict, vault_address: str | None, nonce: int, expires_after: int | None) -> bytes:
    """keccak256 of the msgpack'd action, nonce, vault and expiry (key order matters)."""
    data = msgpack.packb(action)
    data += int(nonce).to_bytes(8, "big")
    if vault_address is None:
        data += b"\x00"
    else:
        data += b"\x01" + bytes.fromhex(vault_address.removeprefix("0x"))
    if expires_after is not None:
        data += b"\x00" + int(expires_after).to_bytes(8, "big")
    return keccak(data)


def _l1_typed(h: bytes, is_mainnet: bool) -> dict:
    return {
        "domain": {"chainId": 1337, "name": "Exchange", "verifyingContract": _ZERO, "version": "1"},
        "types": {
            "Agent": [{"name": "source", "type": "string"}, {"name": "connectionId", "type": "bytes32"}],
            "EIP712Domain": _DOMAIN_TYPES,
        },
        "primaryType": "Agent",
        "message": {"source": "a" if is_mainnet else "b", "connectionId": h},
    }


# The L1 digest, precomputed: EIP-712 hash = keccak(0x1901 || domainSeparator || hashStruct(Agent)),
# hashStruct(Agent) = keccak(typeHash || keccak(source) || connectionId). The domain separator is
# taken from eth-account's own encoder, so it is the library's definition, not a copy.
_L1_DOMAIN = encode_typed_data(full_message=_l1_typed(bytes(32), True)).header
_AGENT_TYPEHASH = keccak(b"Agent(string source,bytes32 connectionId)")
_SOURCE = {True: keccak(b"a"), False: keccak(b"b")}


def l1_digest(h: bytes, is_mainnet: bool) -> bytes:
    """The 32 bytes an L1 action's signature signs (the phantom agent's EIP-712 hash)."""
    return keccak(b"\x19\x01" + _L1_DOMAIN + keccak(_AGENT_TYPEHASH + _SOURCE[is_mainnet] + h))


def _sig_dict(sig: Any) -> dict[str, Any]:
    return {"r": to_hex(sig.r), "s": to_hex(sig.s), "v": sig.v + 27}


def _user_typed(action: dict, types: list[dict], primary: str) -> dict:
    return {
        "domain": {"name": "HyperliquidSignTransaction", "version": "1",
                   "chainId": int(action["signatureChainId"], 16), "verifyingContract": _ZERO},
        "types": {primary: types, "EIP712Domain": _DOMAIN_TYPES},
        "primaryType": primary,
        "message": action,
    }


def _sign(wallet: LocalAccount, typed: dict) -> dict[str, Any]:
    signed = wallet.sign_message(encode_typed_data(full_message=typed))
    return {"r": to_hex(signed.r), "s": to_hex(signed.s), "v": signed.v}


def _recover(typed: dict, sig: dict[str, Any]) -> str:
    return Account.recover_message(encode_typed_data(full_message=typed),
                                   vrs=(int(sig["v"]), sig["r"], sig["s"]))


def sign_l1_action(wallet: LocalAccount, action: dict, vault_address: str | None, nonce: int,
                   expires_after: int | None, is_mainnet: bool) -> dict[str, Any]:
    digest = l1_digest(action_hash(action, vault_address, nonce, expires_after), is_mainnet)
    return _sig_dict(ec.PrivateKey(wallet.key).sign_msg_hash(digest))


def recover_l1_signer(action: dict, vault_address: str | None, nonce: int, expires_after: int | None,
                      is_mainnet: bool, signature: dict[str, Any]) -> str:
    """Checksum address that signed an L1 action (an agent or the user itself)."""
    digest = l1_digest(action_hash(action, vault_address, nonce, expires_after), is_mainnet)
    v = int(signature["v"])
    sig = ec.Signature(vrs=(v - 27 if v >= 27 else v, int(signature["r"], 16), int(signature["s"], 16)))
    return to_checksum_address(sig.recover_public_key_from_msg_hash(digest).to_canonical_address())


def sign_user_signed_action(wallet: LocalAccount, action: dict, types: list[dict], primary: str,
                            is_mainnet: bool) -> dict[str, Any]:
    """Signs in place: sets ``signatureChainId`` and ``hyperliquidChain`` as the exchange expects."""
    action["signatureChainId"] = USER_SIGNATURE_CHAIN_ID
    action["hyperliquidChain"] = "Mainnet" if is_mainnet else "Testnet"
    return _sign(wallet, _user_typed(action, types, primary))


def recover_user_signed_signer(action: dict, types: list[dict], primary: str,
                               signature: dict[str, Any]) -> str:
    return _recover(_user_typed(action, types, primary), signature)


def approve_agent_action(master: LocalAccount, agent_address: str, nonce: int, is_mainnet: bool,
                         agent_name: str = "") -> tuple[dict, dict[str, Any]]:
    """The signed ``approveAgent`` action a master account sends to authorize an API wallet."""
    action = {"type": "approveAgent", "agentAddress": agent_address, "agentName": agent_name,
              "nonce": nonce}
    sig = sign_user_signed_action(master, action, APPROVE_AGENT_TYPES,
                                  "HyperliquidTransaction:ApproveAgent", is_mainnet)
    return action, sig


class NonceManager:
    """Strictly increasing millisecond nonces per signer, safe across threads.

    The exchange keeps each signer's 100 highest nonces and rejects a repeat
    or one at or below the smallest of them, so two requests in the same
    millisecond must still get distinct, increasing nonces.
    """

    def __init__(self, clock_ms=None) -> None:
        self._clock = clock_ms or (lambda: int(time.time() * 1000))
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            n = max(int(self._clock()), self._last + 1)
            self._last = n
            return n


class Signer:
    """An agent (API wallet) key loaded from the environment or a file.

    ``account_address`` is the master account the agent trades for: balances,
    positions, orders and user channels are keyed by it, never by the agent.
    """

    def __init__(self, key: str, account_address: str | None = None) -> None:
        self._wallet: LocalAccount = Account.from_key(key)
        self._key = ec.PrivateKey(self._wallet.key)  # coincurve's backend (a dependency) when installed
        self.address: str = self._wallet.address
        self.account_address: str = account_address or self.address

    @classmethod
    def from_env(cls, var: str = "HLQUANT_PRIVATE_KEY", key_file: str | None = None,
                 account_address: str | None = None) -> Signer:
        key = os.environ.get(var)
        if not key and key_file:
            key = Path(key_file).expanduser().read_text().strip()
        if not key:
            raise KeyError(f"no signer key: set ${var} or give a key file")
        return cls(key, account_address)

    def sign_l1(self, action: dict, nonce: int, is_mainnet: bool, vault_address: str | None = None,
                expires_after: int | None = None) -> dict[str, Any]:
        digest = l1_digest(action_hash(action, vault_address, nonce, expires_after), is_mainnet)
        return _sig_dict(self._key.sign_msg_hash(digest))

    def __repr__(self) -> str:
        return f"Signer(agent={self.address}, account={self.account_address})"

    __str__ = __repr__


# EIP-712 field lists of the user-signed actions (domain HyperliquidSignTransaction),
# keyed by action type: (fields, primary type). The exchange recovers the signer
# from exactly these; a missing or renamed field signs for a different address.
_CHAIN = {"name": "hyperliquidChain", "type": "string"}
USER_SIGNED_TYPES: dict[str, tuple[list[dict], str]] = {
    "approveAgent": (APPROVE_AGENT_TYPES, "HyperliquidTransaction:ApproveAgent"),
    "usdSend": ([_CHAIN, {"name": "destination", "type": "string"}, {"name": "amount", "type": "string"},
                 {"name": "time", "type": "uint64"}], "HyperliquidTransaction:UsdSend"),
    "spotSend": ([_CHAIN, {"name": "destination", "type": "string"}, {"name": "token", "type": "string"},
                  {"name": "amount", "type": "string"}, {"name": "time", "type": "uint64"}],
                 "HyperliquidTransaction:SpotSend"),
    "withdraw3": ([_CHAIN, {"name": "destination", "type": "string"}, {"name": "amount", "type": "string"},
                   {"name": "time", "type": "uint64"}], "HyperliquidTransaction:Withdraw"),
    "usdClassTransfer": ([_CHAIN, {"name": "amount", "type": "string"}, {"name": "toPerp", "type": "bool"},
                          {"name": "nonce", "type": "uint64"}], "HyperliquidTransaction:UsdClassTransfer"),
    "sendAsset": ([_CHAIN, {"name": "destination", "type": "string"}, {"name": "sourceDex", "type": "string"},
                   {"name": "destinationDex", "type": "string"}, {"name": "token", "type": "string"},
                   {"name": "amount", "type": "string"}, {"name": "fromSubAccount", "type": "string"},
                   {"name": "nonce", "type": "uint64"}], "HyperliquidTransaction:SendAsset"),
    "approveBuilderFee": ([_CHAIN, {"name": "maxFeeRate", "type": "string"}, {"name": "builder", "type": "address"},
                           {"name": "nonce", "type": "uint64"}], "HyperliquidTransaction:ApproveBuilderFee"),
    "tokenDelegate": ([_CHAIN, {"name": "validator", "type": "address"}, {"name": "wei", "type": "uint64"},
                       {"name": "isUndelegate", "type": "bool"}, {"name": "nonce", "type": "uint64"}],
                      "HyperliquidTransaction:TokenDelegate"),
    "convertToMultiSigUser": ([_CHAIN, {"name": "signers", "type": "string"}, {"name": "nonce", "type": "uint64"}],
                              "HyperliquidTransaction:ConvertToMultiSigUser"),
    "userDexAbstraction": ([_CHAIN, {"name": "user", "type": "address"}, {"name": "enabled", "type": "bool"},
                            {"name": "nonce", "type": "uint64"}], "HyperliquidTransaction:UserDexAbstraction"),
    "userSetAbstraction": ([_CHAIN, {"name": "user", "type": "address"}, {"name": "abstraction", "type": "string"},
                            {"name": "nonce", "type": "uint64"}], "HyperliquidTransaction:UserSetAbstraction"),
}


def recover_user_action_signer(action: dict, signature: dict[str, Any]) -> str:
    """Signer of a user-signed action, recovered from the action *as signed*: fields the
    signer's client drops from the body after signing (the SDK removes an empty
    ``agentName``) are restored to their signed default first."""
    types, primary = USER_SIGNED_TYPES[action["type"]]
    signed = dict(action)
    for f in types:
        if f["name"] not in signed and f["type"] == "string":
            signed[f["name"]] = ""
    return recover_user_signed_signer(signed, types, primary, signature)
