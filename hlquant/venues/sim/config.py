"""SimVenue configuration and account views."""

from __future__ import annotations

from dataclasses import dataclass, field

from hlquant.venues.sim.latency import LATENCY_MODELS


@dataclass(frozen=True)
class SimVenueConfig:
    """Simulated Hyperliquid venue.

    - taker_fee (0.00045) / maker_fee (0.00015): Hyperliquid's base tier for perps.
    - latency_ms (0): order arrival delay; an order sent at t executes against the
      market as it is at t + latency_ms (0 = processed on submit).
    - latency ("constant"): ``constant`` = latency_ms for every order; ``empirical`` =
      each order's delay drawn from the samples in latency_file (e.g. what
      ``hlquant parity`` measured in a live session), seeded by latency_seed
      (``hlquant.venues.sim.latency``).
    - latency_file (None): the samples (ms) for ``empirical``: CSV with a latency_ms
      column, one number per line, or JSON.
    - latency_seed (0): seed of the empirical draws (same seed and orders, same delays).
    - initial_cash (100_000): USDC in the cross-margin account.
    - default_leverage (5) / leverage ({symbol: int}): per-asset leverage, capped by
      the asset's max_leverage; initial margin = notional / leverage.
    - min_order_value (10.0): Hyperliquid rejects orders under $10 notional.
    - slippage_bps (1.0): extra impact when filling against a book synthesized from
      candles/trades (no L2/BBO fresh enough).
    - half_spread_bps (1.0): half spread of that synthesized book around the last price.
    - book_max_age_ms (120_000): an L2/BBO older than this is not used for fills.
    - market_slippage_cap (0.05): a market order (px=None) is an IOC limit at
      best * (1 ± cap), as the official SDK does.
    - fill_on_touch (False): resting orders fill when a trade prints *through* the
      price (False) or already at it (True).
    - maintenance_margin_fraction (0.5): maintenance margin as a fraction of initial
      margin; account equity below it liquidates every position.
    """

    taker_fee: float = 0.00045
    maker_fee: float = 0.00015
    latency_ms: int = 0
    latency: str = "constant"
    latency_file: str | None = None
    latency_seed: int = 0
    initial_cash: float = 100_000.0
    default_leverage: int = 5
    leverage: dict[str, int] = field(default_factory=dict)
    min_order_value: float = 10.0
    slippage_bps: float = 1.0
    half_spread_bps: float = 1.0
    book_max_age_ms: int = 120_000
    market_slippage_cap: float = 0.05
    fill_on_touch: bool = False
    maintenance_margin_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise ValueError("venue.latency_ms must be >= 0")
        if self.latency not in LATENCY_MODELS:
            raise ValueError(f"venue.latency must be one of {LATENCY_MODELS}, got {self.latency!r}")
        if self.latency == "empirical" and not self.latency_file:
            raise ValueError("venue.latency=empirical needs venue.latency_file (samples in ms)")
        if self.default_leverage < 1:
            raise ValueError("venue.default_leverage must be >= 1")
        if not 0 <= self.initial_cash < float("inf"):  # 0: an unfunded account (the fake exchange's)
            raise ValueError(f"venue.initial_cash must be a finite number >= 0 (USDC), got {self.initial_cash!r}")
        if not 0 < self.market_slippage_cap < 1:
            raise ValueError("venue.market_slippage_cap must be in (0, 1)")
        for name in ("taker_fee", "maker_fee"):  # a maker rebate is a small negative fee
            if not -0.01 < getattr(self, name) < 0.1:
                raise ValueError(f"venue.{name} must be in (-0.01, 0.1), got {getattr(self, name)!r}")
        for name in ("min_order_value", "slippage_bps", "half_spread_bps", "book_max_age_ms"):
            v = getattr(self, name)
            if not 0 <= v < float("inf"):
                raise ValueError(f"venue.{name} must be a finite number >= 0, got {v!r}")
        if not 0 < self.maintenance_margin_fraction <= 1:
            raise ValueError(f"venue.maintenance_margin_fraction must be in (0, 1], "
                             f"got {self.maintenance_margin_fraction!r}")
        bad = {s: v for s, v in self.leverage.items() if not (isinstance(v, int) and v >= 1)}
        if bad:
            raise ValueError(f"venue.leverage values must be integers >= 1, got {bad}")


@dataclass
class PositionState:
    """One position as the exchange reports it. For an isolated position
    ``margin_used`` is its own equity (``isolated_margin + unrealized``) and
    ``liquidation_px`` depends on that margin only."""

    size: float
    entry_px: float
    unrealized: float
    margin_used: float
    leverage: int
    liquidation_px: float
    cum_funding: float
    realized: float
    leverage_type: str = "cross"  # "cross" | "isolated"
    isolated_margin: float = 0.0


@dataclass
class AccountState:
    """``cash`` is the cross balance (isolated margins are held apart, in their
    positions); ``equity`` is the whole account; the ``cross_*`` fields cover
    the cross positions only (Hyperliquid's crossMarginSummary)."""

    cash: float
    equity: float
    margin_used: float
    withdrawable: float
    positions: dict[str, PositionState]
    cross_equity: float = 0.0
    cross_margin_used: float = 0.0
