"""Signing: the SDK's published known-answer vector, and agreement with the SDK's signer."""

from __future__ import annotations

import threading

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.exceptions import BadSignature
from eth_utils import keccak
from hyperliquid.utils import signing as sdk
from hypothesis import given, settings
from hypothesis import strategies as st

from hlquant.core.events import Tif
from hlquant.hyperliquid.signing import (
    APPROVE_AGENT_TYPES,
    NonceManager,
    Signer,
    _l1_typed,
    action_hash,
    approve_agent_action,
    l1_digest,
    recover_l1_signer,
    recover_user_signed_signer,
    sign_l1_action,
)
from hlquant.hyperliquid.wire import float_to_wire, order_action, order_to_wire, order_type_to_wire

KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"
WALLET = Account.from_key(KEY)


def test_published_known_answer_vector():
    # hyperliquid-python-sdk tests/signing_test.py: dummy action, nonce 0, mainnet
    action = {"type": "dummy", "num": 100_000_000_000}
    sig = sign_l1_action(WALLET, action, None, 0, None, True)
    assert sig["r"] == "0x53749d5b30552aeb2fca34b530185976545bb22d0b3ce6f62e31be961a59298"
    assert sig["v"] == 27
    assert recover_l1_signer(action, None, 0, None, True, sig) == WALLET.address


ACTIONS = [
    order_action([order_to_wire(0, True, 0.01, 100_000.0, False, order_type_to_wire(Tif.GTC),
                                "0x" + "12" * 16)]),
    order_action([order_to_wire(5, False, 1.5, 150.25, True,
                                order_type_to_wire(None, {"isMarket": True, "triggerPx": 140.0, "tpsl": "sl"}))]),
    {"type": "cancel", "cancels": [{"a": 1, "o": 123456}]},
    {"type": "cancelByCloid", "cancels": [{"asset": 1, "cloid": "0x" + "ab" * 16}]},
    {"type": "modify", "oid": 42, "order": order_to_wire(0, True, 0.02, 99_000.0, False,
                                                          order_type_to_wire(Tif.ALO))},
    {"type": "scheduleCancel", "time": 1_767_225_700_000},
    {"type": "updateLeverage", "asset": 0, "isCross": True, "leverage": 5},
]


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a["type"])
@pytest.mark.parametrize("mainnet", [True, False])
@pytest.mark.parametrize("vault, expires", [(None, None), ("0x" + "11" * 20, 1_767_225_800_000)])
def test_matches_the_official_sdk(action, mainnet, vault, expires):
    nonce = 1_767_225_600_123
    ours = sign_l1_action(WALLET, action, vault, nonce, expires, mainnet)
    theirs = sdk.sign_l1_action(WALLET, action, vault, nonce, expires, mainnet)
    assert ours == theirs
    assert action_hash(action, vault, nonce, expires) == sdk.action_hash(action, vault, nonce, expires)
    assert recover_l1_signer(action, vault, nonce, expires, mainnet, ours) == WALLET.address
    # a different network or nonce recovers someone else: the signature binds both
    assert recover_l1_signer(action, vault, nonce, expires, not mainnet, ours) != WALLET.address
    assert recover_l1_signer(action, vault, nonce + 1, expires, mainnet, ours) != WALLET.address


def test_approve_agent_matches_sdk_and_recovers_master():
    agent = Account.create()
    action, sig = approve_agent_action(WALLET, agent.address, 1_767_225_600_000, False, "bot")
    theirs = sdk.sign_agent(WALLET, {"type": "approveAgent", "agentAddress": agent.address,
                                     "agentName": "bot", "nonce": 1_767_225_600_000}, False)
    assert sig == theirs
    assert recover_user_signed_signer(action, APPROVE_AGENT_TYPES, "HyperliquidTransaction:ApproveAgent",
                                      sig) == WALLET.address


@pytest.mark.parametrize("x, s", [(1.0, "1"), (0.1, "0.1"), (100000.0, "100000"),
                                  (1.23456789, "1.23456789"), (0.00001, "0.00001")])
def test_float_to_wire(x, s):
    assert float_to_wire(x) == s == sdk.float_to_wire(x)


def test_negative_zero_is_plain_zero():
    assert float_to_wire(-0.0) == "0"  # the SDK emits "-0" here; the exchange's canonical form is "0"


def test_float_to_wire_refuses_precision_loss():
    with pytest.raises(ValueError):
        float_to_wire(1.123456789)


def test_nonces_strictly_increase_across_threads():
    nm = NonceManager(clock_ms=lambda: 1_000)  # a frozen clock: still unique and increasing
    out: list[int] = []
    lock = threading.Lock()

    def work():
        got = [nm.next() for _ in range(500)]
        with lock:
            out.extend(got)

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(set(out)) == 2000 and min(out) == 1_000 and max(out) == 2_999


def test_signer_from_env_and_file_never_shows_the_key(monkeypatch, tmp_path):
    monkeypatch.setenv("HLQUANT_PRIVATE_KEY", KEY)
    s = Signer.from_env(account_address="0x" + "22" * 20)
    assert s.address == WALLET.address and s.account_address == "0x" + "22" * 20
    assert KEY[2:] not in repr(s) and KEY[2:] not in str(s)
    monkeypatch.delenv("HLQUANT_PRIVATE_KEY")
    f = tmp_path / "k"
    f.write_text(KEY + "\n")
    assert Signer.from_env(key_file=str(f)).address == WALLET.address
    with pytest.raises(KeyError, match="no signer key"):
        Signer.from_env()


# --- the fast L1 path (issue 16.5): same bytes as eth-account's encoder and the SDK --------------

@settings(max_examples=200, deadline=None)
@given(h=st.binary(min_size=32, max_size=32), mainnet=st.booleans())
def test_l1_digest_is_eth_accounts_eip712_hash(h, mainnet):
    m = encode_typed_data(full_message=_l1_typed(h, mainnet))
    assert l1_digest(h, mainnet) == keccak(b"\x19" + m.version + m.header + m.body)


@settings(max_examples=60, deadline=None)
@given(key=st.binary(min_size=32, max_size=32).filter(lambda b: 0 < int.from_bytes(b, "big") < 2**255),
       nonce=st.integers(0, 2**63 - 1), px=st.floats(0.01, 1e6), mainnet=st.booleans(),
       expires=st.none() | st.integers(0, 2**63 - 1))
def test_signer_matches_the_sdk_for_any_key_and_action(key, nonce, px, mainnet, expires):
    wallet = Account.from_key(key)
    action = order_action([order_to_wire(3, True, 0.5, round(px, 2), False, order_type_to_wire(Tif.IOC),
                                         "0x" + "cd" * 16)])
    ours = Signer("0x" + key.hex()).sign_l1(action, nonce, mainnet, expires_after=expires)
    assert ours == sdk.sign_l1_action(wallet, action, None, nonce, expires, mainnet)
    assert recover_l1_signer(action, None, nonce, expires, mainnet, ours) == wallet.address


def test_signatures_use_the_compiled_backend():
    """coincurve is a dependency: without it eth-keys falls back to pure Python (25x slower)."""
    assert type(Signer(KEY)._key.backend).__name__ == "CoinCurveECCBackend"


def test_a_malformed_signature_recovers_nobody():
    action = {"type": "cancel", "cancels": [{"a": 1, "o": 1}]}
    sig = sign_l1_action(WALLET, action, None, 1, None, True)
    with pytest.raises(BadSignature):
        recover_l1_signer(action, None, 1, None, True, {**sig, "v": 99})
