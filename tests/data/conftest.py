from __future__ import annotations

import pytest

from hlquant.data.loaders import load_sample
from hlquant.data.market import MarketData


@pytest.fixture(scope="session")
def sample() -> MarketData:
    return load_sample()
