"""Core types shared by every component: events, ids, clocks, asset rules, errors."""

from hlquant.core.assets import DEFAULT_ASSETS, AssetSpec
from hlquant.core.clock import Clock, SimClock, WallClock
from hlquant.core.errors import (
    ConfigError,
    DataError,
    ExchangeError,
    HlquantError,
    RateLimitError,
    StaleFeatureError,
)
from hlquant.core.events import *  # noqa: F403
from hlquant.core.ids import cloid_for, intent_id, is_cloid

__all__ = [
    "AssetSpec",
    "DEFAULT_ASSETS",
    "Clock",
    "SimClock",
    "WallClock",
    "ConfigError",
    "DataError",
    "ExchangeError",
    "HlquantError",
    "RateLimitError",
    "StaleFeatureError",
    "cloid_for",
    "intent_id",
    "is_cloid",
]
