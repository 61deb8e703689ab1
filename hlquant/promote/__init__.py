"""Promotion from research to trading: the pre-flight check ``hlquant live`` runs first.

It sits above both the backtest and the live engine (it runs one, then the
other, and compares them), so neither of those layers imports the other.
"""

from hlquant.promote.preflight import Check, PreflightError, preflight

__all__ = ["Check", "PreflightError", "preflight"]
