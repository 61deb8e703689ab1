"""The live venue's request budget comes from the config, for every process that trades."""

from __future__ import annotations

from hlquant.config.compose import load_config
from hlquant.config.spec import KernelSpec
from hlquant.fakeexchange.testing import running_fake_exchange
from hlquant.kernel.components import exchange_assets, hyperliquid_venue


def test_the_ip_weight_budget_is_router_weight_per_min_shared_by_info_and_exchange(monkeypatch):
    # a router replica's client kept its own default (1,200/min) whatever the config said: the
    # latency bench of the processes topology was paced at 20 orders/s after 2,000 orders
    with running_fake_exchange() as fx:
        monkeypatch.setenv("HLQUANT_PRIVATE_KEY", fx.agent_key)
        cfg = load_config(["mode=live", f"live.url={fx.url}", f"live.account_address={fx.master}",
                           "router.weight_per_min=90000"])
        spec = KernelSpec.from_config(cfg, mode="live")
        venue = hyperliquid_venue(spec, exchange_assets(spec))
        bucket = venue.info.limiter.bucket
        assert (bucket.capacity, bucket.rate) == (90_000.0, 1_500.0)
        assert venue.exchange.limiter is venue.info.limiter  # one IP budget for both kinds of request
        for _ in range(2_000):  # far past the exchange's default budget, without waiting
            assert venue.info.limiter.acquire(1, block=False)
