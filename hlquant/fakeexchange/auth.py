"""Authentication as the exchange does it: recover who signed, map an approved
agent (API wallet) to its master account, check the nonce.

L1 actions (order, cancel, leverage ...) are signed by the master or an
approved agent over the phantom agent of the action's hash; user-signed
actions (approveAgent, usdSend, withdraw3 ...) by the master itself under
the ``HyperliquidSignTransaction`` domain, recovered from the action *as
signed* (the SDK drops an empty ``agentName`` after signing). Nonces are per
signer: the 100 highest are kept, a new one must exceed the smallest of
them, never repeat, and lie within (now - 2 days, now + 1 day).
A ``vaultAddress`` must be a sub-account or vault the signer's master
controls; anything else is refused, never traded on the master's account.
"""

from __future__ import annotations

from typing import Any

from hlquant.hyperliquid.signing import (
    USER_SIGNED_TYPES,
    recover_l1_signer,
    recover_user_action_signer,
)

NONCE_PAST_MS = 2 * 86_400_000
NONCE_FUTURE_MS = 86_400_000
NONCES_KEPT = 100


class AuthMixin:
    """Part of ``FakeExchange``: signatures, agents, vaults and nonces."""

    def _check_nonce(self, signer: str, nonce: int, now: int) -> str:
        if not now - NONCE_PAST_MS < nonce < now + NONCE_FUTURE_MS:
            return f"Invalid nonce: {nonce} is outside the allowed window"
        kept = self.nonces[signer]
        if nonce in kept:
            return "Invalid nonce: duplicate nonce"
        if len(kept) >= NONCES_KEPT and nonce <= kept[0]:
            return "Invalid nonce: nonce is too low"
        kept.append(nonce)
        kept.sort()
        if len(kept) > NONCES_KEPT:
            del kept[0]
        return ""

    def _authenticate(self, body: dict[str, Any], now: int) -> tuple[str, Any, str]:
        """(signer, account to act on, error). ``error`` is the exchange's text when refused."""
        action = body.get("action") or {}
        t = action.get("type")
        sig = body.get("signature")
        nonce = body.get("nonce")
        vault = body.get("vaultAddress")
        try:
            if t in USER_SIGNED_TYPES and "signatureChainId" in action:
                signer = recover_user_action_signer(action, sig).lower()
            else:
                signer = recover_l1_signer(action, vault, nonce, body.get("expiresAfter"), self.is_mainnet,
                                           sig).lower()
        except Exception as e:  # malformed signature values
            return "", None, f"Invalid signature: {e}"
        if t in USER_SIGNED_TYPES and "signatureChainId" in action:
            if signer not in self.accounts:
                return signer, None, f"User {signer} does not exist."
            master = signer
        else:
            master = self.agents.get(signer) or (signer if signer in self.accounts else None)
            if master is None:
                self.counters["bad_signer"] += 1
                return signer, None, f"User or API Wallet {signer} does not exist."
        err = self._check_nonce(signer, int(nonce), now)
        if err:
            self.counters["bad_nonce"] += 1
            return signer, None, err
        if vault:
            v = str(vault).lower()
            if self.sub_accounts.get(v) != master:
                self.counters["bad_vault"] += 1
                return signer, None, f"Vault {v} does not exist or is not controlled by {master}."
            return signer, self.accounts[v], ""
        return signer, self.accounts[master], ""
