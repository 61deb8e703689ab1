from __future__ import annotations

import time

import pytest

from hlquant.core.events import BookSnapshot
from hlquant.fakeexchange.testing import running_fake_exchange
from hlquant.hyperliquid.exchange import ExchangeClient
from hlquant.hyperliquid.info import InfoClient
from hlquant.hyperliquid.signing import Signer


def now_ms() -> int:
    return int(time.time() * 1000)


def seed_books(server) -> None:
    t = now_ms()
    server.publish(BookSnapshot(t, t, "BTC", [(99_990.0, 2.0), (99_980.0, 3.0)], [(100_010.0, 2.0), (100_020.0, 3.0)]))
    server.publish(BookSnapshot(t, t, "ETH", [(2_999.0, 20.0)], [(3_001.0, 20.0)]))
    server.publish(BookSnapshot(t, t, "SOL", [(149.9, 500.0)], [(150.1, 500.0)]))


@pytest.fixture()
def fx():
    with running_fake_exchange() as fx:
        seed_books(fx.server)
        yield fx


@pytest.fixture()
def clients(fx):
    info = InfoClient(fx.url)
    signer = Signer(fx.agent_key, account_address=fx.master)
    ex = ExchangeClient(signer, info.assets(), base_url=fx.url)
    return info, ex
