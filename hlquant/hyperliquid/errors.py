"""Hyperliquid's replies and texts -> typed outcomes: the one place that reads them.

- ``classify_error``: an exchange error text (``{"error": "..."}``) -> ``ErrorCode``.
- ``classify_status``: an order status string (orderStatus, orderUpdates) ->
  ``OrderStatus`` and ``ErrorCode``; every ``...Canceled`` status and
  ``scheduledCancel`` is a cancel, never a rejection.
- ``classify_reply``: an HTTP reply to an /exchange request -> ``accepted``
  (the exchange's JSON with ``status: ok``), ``rejected`` (a definitive
  refusal: ``status: err``, a 4xx it answered, or 429 which it never
  processed) or ``unknown`` (5xx, a body that is not the exchange's JSON, an
  HTML page with status 200: the action may or may not have taken effect,
  so it is resolved by looking the order up, never by re-sending).

Everything downstream compares codes; an unrecognized text is a definitive
refusal of an unknown kind (``BAD_REQUEST``) rather than something retried.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from hlquant.core.errors import ExchangeError
from hlquant.core.events import ErrorCode, OrderStatus

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
    ("Invalid asset", ErrorCode.UNKNOWN_ASSET),
    ("Too many open orders", ErrorCode.OPEN_ORDER_LIMIT),
    ("Too many cumulative requests", ErrorCode.RATE_LIMITED),
)

#: Every order status Hyperliquid reports (docs, info endpoint, "Query order status
#: by oid or cloid": https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint#query-order-status-by-oid-or-cloid).
CANCEL_STATUSES = frozenset({
    "canceled", "scheduledCancel", "vaultWithdrawalCanceled", "openInterestCapCanceled", "selfTradeCanceled",
    "reduceOnlyCanceled", "siblingFilledCanceled", "delistedCanceled", "liquidatedCanceled",
    "outcomeSettledCanceled",
})
REJECT_STATUSES: dict[str, ErrorCode] = {
    "rejected": ErrorCode.BAD_REQUEST,
    "tickRejected": ErrorCode.INVALID_PRICE,
    "minTradeNtlRejected": ErrorCode.MIN_VALUE,
    "minTradeSpotNtlRejected": ErrorCode.MIN_VALUE,
    "perpMarginRejected": ErrorCode.INSUFFICIENT_MARGIN,
    "reduceOnlyRejected": ErrorCode.REDUCE_ONLY,
    "badAloPxRejected": ErrorCode.POST_ONLY_MATCH,
    "iocCancelRejected": ErrorCode.IOC_NO_MATCH,
    "badTriggerPxRejected": ErrorCode.INVALID_PRICE,
    "marketOrderNoLiquidityRejected": ErrorCode.IOC_NO_MATCH,
    "positionIncreaseAtOpenInterestCapRejected": ErrorCode.BAD_REQUEST,
    "positionFlipAtOpenInterestCapRejected": ErrorCode.BAD_REQUEST,
    "tooAggressiveAtOpenInterestCapRejected": ErrorCode.BAD_REQUEST,
    "openInterestIncreaseRejected": ErrorCode.BAD_REQUEST,
    "insufficientSpotBalanceRejected": ErrorCode.INSUFFICIENT_MARGIN,
    "oracleRejected": ErrorCode.BAD_REQUEST,
    "perpMaxPositionRejected": ErrorCode.BAD_REQUEST,
}
_PLAIN = {"open": OrderStatus.OPEN, "filled": OrderStatus.FILLED, "triggered": OrderStatus.TRIGGERED,
          "marginCanceled": OrderStatus.MARGIN_CANCELED}


def classify_error(text: str) -> ErrorCode:
    """The code of an exchange error text (``BAD_REQUEST`` when unrecognized)."""
    low = text.lower()
    for sub, code in _TEXTS:
        if sub.lower() in low:
            return code
    return ErrorCode.BAD_REQUEST


def classify_status(status: str) -> tuple[OrderStatus, ErrorCode]:
    """An order status string -> (OrderStatus, ErrorCode). Cancels of every kind are
    CANCELED (``marginCanceled`` keeps its own MARGIN_CANCELED, also a cancel); a
    status never seen before is a cancel if it says so, else a rejection."""
    st = _PLAIN.get(status)
    if st is not None:
        return st, ErrorCode.NONE
    if status in CANCEL_STATUSES or status.endswith("Canceled") or status.endswith("Cancel"):
        return OrderStatus.CANCELED, ErrorCode.NONE
    return OrderStatus.REJECTED, REJECT_STATUSES.get(status, ErrorCode.BAD_REQUEST)


class ReplyKind(Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Reply:
    kind: ReplyKind
    body: Any = None  # the ``response`` of an accepted reply
    code: ErrorCode = ErrorCode.NONE
    message: str = ""


class UnknownOutcomeError(ExchangeError):
    """The request may or may not have taken effect (no reply, 5xx, unreadable body):
    look the order up before doing anything else."""

    default_code = ErrorCode.UNKNOWN_OUTCOME


class UnavailableError(ExchangeError):
    """The request never reached the exchange (connection refused): safe to send again."""

    default_code = ErrorCode.UNAVAILABLE


def classify_reply(status_code: int, text: str) -> Reply:
    """Classify an /exchange HTTP reply (see module docstring)."""
    if status_code == 429:
        return Reply(ReplyKind.REJECTED, code=ErrorCode.RATE_LIMITED, message="rate limited (429)")
    if status_code >= 500:
        return Reply(ReplyKind.UNKNOWN, code=ErrorCode.UNKNOWN_OUTCOME,
                     message=f"HTTP {status_code}: {text[:200]}")
    if status_code >= 400:
        return Reply(ReplyKind.REJECTED, code=ErrorCode.BAD_REQUEST, message=f"HTTP {status_code}: {text[:200]}")
    try:
        out = json.loads(text)
    except ValueError:
        return Reply(ReplyKind.UNKNOWN, code=ErrorCode.UNKNOWN_OUTCOME,
                     message=f"unreadable reply (HTTP {status_code}): {text[:200]}")
    if not isinstance(out, dict) or out.get("status") not in ("ok", "err"):
        return Reply(ReplyKind.UNKNOWN, code=ErrorCode.UNKNOWN_OUTCOME,
                     message=f"unexpected reply: {text[:200]}")
    if out["status"] == "err":
        msg = str(out.get("response"))
        return Reply(ReplyKind.REJECTED, code=classify_error(msg), message=msg)
    return Reply(ReplyKind.ACCEPTED, body=out.get("response"))
