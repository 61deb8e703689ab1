"""What may never reach a file: secret-looking keys and private keys (32 bytes of hex).

One place for the rule, used by every writer (the audit log, reports, run metadata,
the command line's echo of its overrides)."""

from __future__ import annotations

import re
from typing import Any

SECRET_KEY_RE = re.compile(r"(secret|private|priv_?key|password|api_?key|mnemonic)", re.I)
HEX_KEY_RE = re.compile(r"(?<![0-9a-fA-F])(?:0x)?[0-9a-fA-F]{64}(?![0-9a-fA-F])")


def looks_secret(key: str, value: str) -> bool:
    """A secret-looking key name, or a value holding 32 bytes of hex (a private key)."""
    return bool(SECRET_KEY_RE.search(key)) or bool(HEX_KEY_RE.search(str(value)))


def redact_text(text: str) -> str:
    """``text`` with every 32-byte hex string (with or without 0x) replaced by ``***``."""
    return HEX_KEY_RE.sub("***", text)


def redact(obj: Any) -> Any:
    """Replace values under secret-looking keys, and 32-byte hex strings (private
    keys, with or without 0x) anywhere, with ``'***'``."""
    if isinstance(obj, dict):
        return {
            k: ("***" if isinstance(k, str) and SECRET_KEY_RE.search(k) else redact(v))
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    if isinstance(obj, str) and HEX_KEY_RE.search(obj):
        return HEX_KEY_RE.sub("***", obj)
    return obj
