"""Cost of one L1 order signature, where it goes, and against the official SDK.

    .venv/bin/python bench/signing.py [--n 2000]

Every order hlquant sends is signed (EIP-712 over a "phantom agent" whose
connectionId is the keccak of the msgpack'd action). Stages, each timed alone:

- action hash: msgpack + keccak of the action, nonce, vault and expiry;
- EIP-712 encoding: eth-account's generic typed-data encoder (what the SDK runs)
  against hlquant's precomputed digest (domain separator and type hash derived once);
- ECDSA: eth-keys' pure-Python backend against coincurve (libsecp256k1).

Then the whole signature: hlquant's ``Signer.sign_l1`` against the SDK's
``sign_l1_action`` (eth-account, with whatever backend eth-keys picks) and against
the path hlquant used before (eth-account encoder + the pure-Python backend),
after checking all three produce the same signature.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def per_call_us(fn, n: int, repeats: int = 5) -> float:
    """Median over ``repeats`` runs of the mean time of ``n`` calls, in microseconds."""
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2_000, help="calls per timing run")
    args = ap.parse_args(argv)

    from eth_account import Account
    from eth_account.messages import encode_typed_data
    from eth_keys.backends import CoinCurveECCBackend, NativeECCBackend
    from eth_keys.datatypes import PrivateKey
    from eth_utils import keccak, to_hex
    from hyperliquid.utils import signing as sdk

    from hlquant.core.events import Tif
    from hlquant.hyperliquid.signing import Signer, _l1_typed, action_hash, l1_digest
    from hlquant.hyperliquid.wire import order_action, order_to_wire, order_type_to_wire

    key = "0x" + "4f" * 32
    wallet = Account.from_key(key)
    signer = Signer(key)
    native = PrivateKey(wallet.key, backend=NativeECCBackend())
    compiled = PrivateKey(wallet.key, backend=CoinCurveECCBackend())
    action = order_action([order_to_wire(0, True, 0.001, 100_000.0, False, order_type_to_wire(Tif.IOC),
                                         "0x" + "ab" * 16)])
    nonce, mainnet, expires = 1_767_225_600_123, True, 1_767_225_605_123
    h = action_hash(action, None, nonce, expires)
    digest = l1_digest(h, mainnet)

    def old_path() -> dict:
        m = encode_typed_data(full_message=_l1_typed(action_hash(action, None, nonce, expires), mainnet))
        sig = native.sign_msg_hash(keccak(b"\x19" + m.version + m.header + m.body))
        return {"r": to_hex(sig.r), "s": to_hex(sig.s), "v": sig.v + 27}

    ours = signer.sign_l1(action, nonce, mainnet, expires_after=expires)
    theirs = sdk.sign_l1_action(wallet, action, None, nonce, expires, mainnet)
    assert ours == theirs == old_path(), "the three paths must sign the same bytes"

    n = args.n
    slow_n = max(50, n // 20)  # the pure-Python backend is ~25x slower
    t_hash = per_call_us(lambda: action_hash(action, None, nonce, expires), n)
    t_enc_generic = per_call_us(lambda: encode_typed_data(full_message=_l1_typed(h, mainnet)), n)
    t_enc_fast = per_call_us(lambda: l1_digest(h, mainnet), n)
    t_ecdsa_native = per_call_us(lambda: native.sign_msg_hash(digest), slow_n)
    t_ecdsa_cc = per_call_us(lambda: compiled.sign_msg_hash(digest), n)
    t_old = per_call_us(old_path, slow_n)
    t_sdk = per_call_us(lambda: sdk.sign_l1_action(wallet, action, None, nonce, expires, mainnet), n)
    t_ours = per_call_us(lambda: signer.sign_l1(action, nonce, mainnet, expires_after=expires), n)

    print(f"== one L1 order signature (median of 5 x {n:,} calls; hlquant's eth-keys backend: "
          f"{type(signer._key.backend).__name__}) ==")
    print(f"action hash (msgpack + keccak)            {t_hash:9.1f} us")
    print(f"EIP-712 encoding, eth-account generic     {t_enc_generic:9.1f} us")
    print(f"EIP-712 digest, precomputed (hlquant)     {t_enc_fast:9.1f} us   "
          f"{t_enc_generic / t_enc_fast:5.1f}x faster")
    print(f"ECDSA, eth-keys pure Python               {t_ecdsa_native:9.1f} us")
    print(f"ECDSA, coincurve (libsecp256k1)           {t_ecdsa_cc:9.1f} us   "
          f"{t_ecdsa_native / t_ecdsa_cc:5.1f}x faster")
    print()
    print(f"whole signature, before (eth-account + pure-Python ECDSA) {t_old:9.1f} us")
    print(f"whole signature, official SDK sign_l1_action               {t_sdk:9.1f} us")
    print(f"whole signature, hlquant Signer.sign_l1                     {t_ours:9.1f} us")
    print(f"ratio: {t_old / t_ours:.1f}x faster than before, {t_sdk / t_ours:.1f}x faster than the SDK "
          "(identical signatures)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
