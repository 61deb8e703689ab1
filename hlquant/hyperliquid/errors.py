"""Hyperliquid's error texts -> ``ErrorCode``: the one place that reads them.

The exchange reports refusals as English sentences (``{"error": "..."}``).
Everything downstream compares codes, so the mapping lives here, once, and
an unrecognized text is a definitive refusal of an unknown kind
(``BAD_REQUEST``) rather than something retried.
"""

from __future__ import annotations

from hlquant.core.events import ErrorCode

# (substring of the exchange's text, code); first match wins
_TEXTS: tuple[tuple[str, ErrorCode], ...] = (
    ("never placed", ErrorCode.NOT_FOUND),
    ("Cannot modify", ErrorCode.NOT_FOUND),
    ("minimum value", ErrorCode.MIN_VALUE),
    ("Insufficient margin", ErrorCode.INSUFFICIENT_MARGIN),
    ("Reduce only order would increase", ErrorCode.REDUCE_ONLY),
    ("Post only order would have immediately matched", ErrorCode.POST_ONLY_MATCH),
    ("could not immediately match", ErrorCode.IOC_NO_MATCH),
    ("tick size", ErrorCode.INVALID_PRICE),
    ("Invalid price", ErrorCode.INVALID_PRICE),
    ("invalid size", ErrorCode.INVALID_SIZE),
    ("Invalid leverage", ErrorCode.INVALID_LEVERAGE),
    ("Unknown asset", ErrorCode.UNKNOWN_ASSET),
    ("Too many open orders", ErrorCode.OPEN_ORDER_LIMIT),
    ("Too many cumulative requests", ErrorCode.RATE_LIMITED),
)


def classify_error(text: str) -> ErrorCode:
    """The code of an exchange error text (``BAD_REQUEST`` when unrecognized)."""
    low = text.lower()
    for sub, code in _TEXTS:
        if sub.lower() in low:
            return code
    return ErrorCode.BAD_REQUEST
