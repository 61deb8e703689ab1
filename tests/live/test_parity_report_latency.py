"""Measured latency instead of a constant: ``venue.latency=empirical venue.latency_file=...``.

The parity report writes the latencies a session met (``latency_samples.csv``); the
SimVenue draws each order's delay from them, seeded, so a backtest with them is
reproducible and differs from one that fills at once.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hlquant.backtest.run import run_backtest
from hlquant.config.compose import load_config
from hlquant.config.spec import KernelSpec
from hlquant.core.assets import DEFAULT_ASSETS
from hlquant.core.clock import SimClock
from hlquant.core.errors import ConfigError
from hlquant.core.events import Fill, OrderRequest, OrderStatus, Side, Tif
from hlquant.data.loaders import load_sample
from hlquant.venues.sim import SimVenue, SimVenueConfig
from hlquant.venues.sim.latency import (
    ConstantLatency,
    EmpiricalLatency,
    latency_model,
    load_samples,
)

T0 = 1_767_225_600_000


def write_csv(path, values):
    path.write_text("cloid,symbol,latency_ms\n" + "".join(f"0x{i:032x},BTC,{v}\n" for i, v in enumerate(values)))
    return path


def test_empirical_draws_only_measured_values_reproducibly(tmp_path):
    f = write_csv(tmp_path / "lat.csv", [120, 300, 300, 950])
    a = latency_model(SimVenueConfig(latency="empirical", latency_file=str(f), latency_seed=3))
    b = latency_model(SimVenueConfig(latency="empirical", latency_file=str(f), latency_seed=3))
    c = latency_model(SimVenueConfig(latency="empirical", latency_file=str(f), latency_seed=4))
    da, db, dc = ([m.delay_ms() for _ in range(400)] for m in (a, b, c))
    assert da == db and da != dc
    assert set(da) == {120, 300, 950}
    assert 0.4 < da.count(300) / len(da) < 0.6  # drawn with the samples' frequencies
    assert isinstance(latency_model(SimVenueConfig(latency_ms=25)), ConstantLatency)
    assert latency_model(SimVenueConfig(latency_ms=25)).delay_ms() == 25


@pytest.mark.parametrize("name,text", [("lat.txt", "12\n40.4\n\n7\n"), ("lat.json", json.dumps([12, 40.4, 7])),
                                       ("lat2.json", json.dumps({"latency_ms": [12, 40.4, 7]}))])
def test_sample_file_formats(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    assert load_samples(p).tolist() == [12.0, 40.4, 7.0]
    assert EmpiricalLatency(load_samples(p)).samples.tolist() == [12, 40, 7]


def test_bad_latency_config_names_the_key_file_and_row(tmp_path):
    with pytest.raises(ValueError, match="latency_file"):
        SimVenueConfig(latency="empirical")
    with pytest.raises(ValueError, match="venue.latency must be one of"):
        SimVenueConfig(latency="gaussian")
    with pytest.raises(ConfigError, match="no such file"):
        SimVenue(dict(DEFAULT_ASSETS), SimVenueConfig(latency="empirical", latency_file=str(tmp_path / "nope.csv")))
    bad = tmp_path / "bad.csv"
    bad.write_text("latency_ms\n10\nabc\n")
    with pytest.raises(ConfigError, match=r"bad.csv: row 3"):
        load_samples(bad)
    neg = write_csv(tmp_path / "neg.csv", [10, -5])
    with pytest.raises(ConfigError, match="finite and >= 0"):
        latency_model(SimVenueConfig(latency="empirical", latency_file=str(neg)))
    with pytest.raises(ConfigError, match="venue: venue.latency must be"):
        KernelSpec.from_config(load_config(["venue.latency=gaussian"]))


def test_simvenue_order_arrives_after_its_drawn_delay(tmp_path):
    """The hook: an accepted order executes against the market as it is at t + the drawn delay."""
    f = write_csv(tmp_path / "lat.csv", [250])
    clock = SimClock(T0)
    v = SimVenue(dict(DEFAULT_ASSETS), SimVenueConfig(latency="empirical", latency_file=str(f)), clock=clock)
    events: list = []
    v.add_listener(events.append)
    v.on_trade("BTC", T0, 1, 90_000.0, 1.0)
    req = OrderRequest(T0, T0, "0x" + "1" * 32, "i1", "a", "BTC", Side.BUY, 0.01, None, Tif.IOC)
    ack = v.submit([req])[0]
    assert ack.status == OrderStatus.PENDING and not [e for e in events if isinstance(e, Fill)]
    v.on_trade("BTC", T0 + 100, 1, 90_500.0, 1.0)  # before arrival: the order still waits
    assert not [e for e in events if isinstance(e, Fill)]
    clock.t = T0 + 300
    v.advance(T0 + 300)  # time moves on (the kernel advances before the next event): arrival at
    (fill,) = [e for e in events if isinstance(e, Fill)]  # T0+250, against the market of T0+100
    # synthesized book: last trade + half spread (1 bp) + slippage (1 bp), the defaults
    assert fill.ts_exch == T0 + 250 and fill.px == pytest.approx(90_500.0 * 1.0002)


def test_backtest_with_empirical_latency_is_reproducible_and_differs(tmp_path):
    md = load_sample()
    t0 = int(md.span()[0])
    md = md.select(symbols=["BTC"], start=t0, end=t0 + 2 * 86_400_000)
    f = write_csv(tmp_path / "lat.csv", [30_000, 60_000, 90_000])  # minutes of latency on 1m bars
    base = ["strategy=ma_cross", "strategy.fast=3", "strategy.slow=8", "strategy.symbols=[BTC]"]
    emp = [*base, "venue.latency=empirical", f"venue.latency_file={f}", "venue.latency_seed=1"]

    def fills(over):
        res = run_backtest(load_config(over), market=md, report=False)
        return res.artifacts.fills[["ts", "side", "px", "sz"]].to_numpy().tolist()

    at_once, delayed, again = fills(base), fills(emp), fills(emp)
    assert len(at_once) > 10 and len(delayed) > 10
    assert delayed == again
    assert delayed != at_once
    fills_at_once = {r[0] for r in at_once}
    assert np.mean([r[0] in fills_at_once for r in delayed]) < 0.5  # most fills moved in time
