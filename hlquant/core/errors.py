"""Exceptions shared across components."""

from __future__ import annotations

from hlquant.core.events import ErrorCode


class HlquantError(Exception):
    """Base class of hlquant's own errors."""


class DataError(HlquantError, ValueError):
    """Bad input data; the message names the file, column and row."""


class StaleFeatureError(HlquantError):
    """A feature read was refused because its value is older than allowed."""

    def __init__(self, symbol: str, name: str, age_ms: int | None, max_age_ms: int):
        self.symbol, self.name, self.age_ms, self.max_age_ms = symbol, name, age_ms, max_age_ms
        what = "never written" if age_ms is None else f"{age_ms} ms old"
        super().__init__(f"feature {name!r} of {symbol} is stale: {what}, limit {max_age_ms} ms")


class ConfigError(HlquantError, ValueError):
    """Invalid or unsafe configuration."""


class IntentError(HlquantError, ValueError):
    """A strategy asked for something that is not an order: unknown side or tif,
    size <= 0, a number that is not finite, a price <= 0. Never retried."""


class UnknownFeatureError(HlquantError, KeyError):
    """A strategy read a feature that no agent declared (usually a typo)."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class AgentFailure(HlquantError):
    """A strategy raised (or returned a non-intent) and the policy is to stop the run."""


class ExchangeError(HlquantError):
    """An exchange (real or simulated) refused a request, or its reply could not be
    read. ``code`` (an ``ErrorCode``) says which, and whether retrying can help
    (``retryable``); the message is for people."""

    default_code = ErrorCode.BAD_REQUEST

    def __init__(self, message: str, status: int | None = None, code: ErrorCode | None = None):
        self.message, self.status = message, status
        self.code = self.default_code if code is None else code
        super().__init__(message if status is None else f"[{status}] {message}")

    @property
    def retryable(self) -> bool:
        return self.code.retryable


class RateLimitError(ExchangeError):
    """HTTP 429 or a local token bucket refused the request."""

    default_code = ErrorCode.RATE_LIMITED
