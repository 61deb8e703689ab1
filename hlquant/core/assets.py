"""Per-asset trading rules (Hyperliquid's meta: szDecimals, maxLeverage) and
the price/size rounding rules every venue and the router share."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class AssetSpec:
    """One perpetual. ``asset_id`` is its index in Hyperliquid's ``meta.universe``.

    - sz_decimals: sizes are rounded to this many decimals.
    - max_leverage: cap for ``updateLeverage`` and margin checks.
    """

    name: str
    asset_id: int
    sz_decimals: int
    max_leverage: int

    @property
    def px_decimals(self) -> int:
        """Perps: at most ``6 - szDecimals`` decimals in a price."""
        return 6 - self.sz_decimals

    def round_size(self, sz: float) -> float:
        """Round a size down (towards zero) to the lot size, decimal-exactly.

        A size already on the lot grid comes back unchanged (650.81 BTC stays
        650.81, not 650.80999): it is snapped to the nearest whole number of lots
        when within float noise of it (1e-9 lot, or 1e-15 relative at large
        magnitudes), and ``lots / 10**d`` is the float nearest to that decimal,
        the same float the literal parses to."""
        q = 10.0**self.sz_decimals
        x = abs(sz) * q
        n = round(x)
        if abs(x - n) > 1e-9 + x * 1e-15:
            n = math.floor(x)
        return n / q * (1.0 if sz >= 0 else -1.0)

    def round_price(self, px: float) -> float:
        """Nearest valid price: 5 significant figures and ``6 - szDecimals`` decimals.
        Integer prices are always valid."""
        return round_price(px, self.px_decimals)

    def is_valid_price(self, px: float) -> bool:
        return is_valid_price(px, self.px_decimals)

    def is_valid_size(self, sz: float) -> bool:
        q = abs(sz) * 10.0**self.sz_decimals
        return abs(q - round(q)) < 1e-6


def round_price(px: float, max_decimals: int) -> float:
    if px <= 0 or not math.isfinite(px):
        return px
    if px == int(px):
        return float(px)
    digits = 5 - int(math.floor(math.log10(abs(px)))) - 1
    return round(px, max(0, min(digits, max_decimals)))


def is_valid_price(px: float, max_decimals: int) -> bool:
    if px <= 0 or not math.isfinite(px):
        return False
    if px == int(px):
        return True
    d = Decimal(repr(px)).normalize()
    decimals = max(0, -d.as_tuple().exponent)
    sig = len(d.as_tuple().digits)
    return decimals <= max_decimals and sig <= 5


DEFAULT_ASSETS: dict[str, AssetSpec] = {
    # Values as in Hyperliquid's meta (universe index, szDecimals, maxLeverage).
    "BTC": AssetSpec("BTC", 0, 5, 40),
    "ETH": AssetSpec("ETH", 1, 4, 25),
    "SOL": AssetSpec("SOL", 5, 2, 20),
}


GENERATED_PREFIX = "GEN"
"""Symbols of the synthetic generator's larger universes: GEN000, GEN001, ... (not listed
on any exchange; ``hlquant.data.generate``)."""


def generated_symbols(n: int) -> list[str]:
    """``n`` generated symbol names, GEN000 upwards."""
    if not 0 <= n <= 1000:
        raise ValueError(f"between 0 and 1000 generated symbols, got {n}")
    return [f"{GENERATED_PREFIX}{i:03d}" for i in range(n)]


def generated_asset(symbol: str) -> AssetSpec | None:
    """The rules of a generated symbol (2 size decimals, 10x, asset id 10000 + its number),
    or None when ``symbol`` is not one."""
    tail = symbol[len(GENERATED_PREFIX):]
    if not symbol.startswith(GENERATED_PREFIX) or len(tail) != 3 or not tail.isdigit():
        return None
    return AssetSpec(symbol, 10_000 + int(tail), 2, 10)


def known_assets(symbols: list[str] | tuple[str, ...]) -> dict[str, AssetSpec]:
    """``DEFAULT_ASSETS`` plus the rules of any generated symbol among ``symbols``."""
    out = dict(DEFAULT_ASSETS)
    for s in symbols:
        if s not in out:
            spec = generated_asset(s)
            if spec is not None:
                out[s] = spec
    return out
