"""Sizes on the lot grid go out unchanged (issue 11, item 12): decimal-exact lot rounding,
checked against the official SDK's wire format (``float_to_wire``)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hyperliquid.utils.signing import float_to_wire as sdk_float_to_wire
from hypothesis import given, settings
from hypothesis import strategies as st

from hlquant.core.assets import DEFAULT_ASSETS, AssetSpec
from hlquant.core.events import OrderRequest, Side, Tif
from hlquant.hyperliquid.exchange import ExchangeClient
from hlquant.hyperliquid.signing import Signer
from hlquant.hyperliquid.wire import float_to_wire

KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"


def wire_size(spec: AssetSpec, sz: float) -> str:
    """The size string hlquant's exchange client puts on an order wire."""
    ex = ExchangeClient(Signer(KEY), {spec.name: spec}, base_url="http://127.0.0.1:1")
    req = OrderRequest(0, 0, "", "i", "a", spec.name, Side.BUY, sz, 1000.0, Tif.GTC)
    return ex.order_wires([req], {})[0]["s"]


@pytest.mark.parametrize("sym, sz, wire", [("BTC", 650.81, "650.81"), ("ETH", 8959.4034, "8959.4034"),
                                           ("BTC", 0.00001, "0.00001"), ("SOL", 2.0999999999999996, "2.1")])
def test_a_size_on_the_grid_goes_out_unchanged(sym, sz, wire):
    spec = DEFAULT_ASSETS[sym]
    assert spec.round_size(sz) == float(wire)
    assert wire_size(spec, sz) == wire == sdk_float_to_wire(spec.round_size(sz))


SPECS = st.builds(AssetSpec, st.just("X"), st.just(0), st.integers(0, 6), st.just(50))


@settings(max_examples=400, deadline=None)
@given(spec=SPECS, lots=st.integers(1, 10**12))
def test_random_grid_sizes_across_magnitudes_match_the_sdk_wire(spec, lots):
    exact = Decimal(lots).scaleb(-spec.sz_decimals)
    sz = float(exact)  # the float a user or a strategy holds for that decimal size
    out = spec.round_size(sz)
    assert out == sz
    expected = f"{exact.normalize():f}"
    assert float_to_wire(out) == expected
    sdk = sdk_float_to_wire(out)
    assert float(sdk) == out  # the same number either way
    if abs(out) < 2**24:  # where a double resolves 1e-8 (the SDK writes 8 fixed decimals): the same string
        assert sdk == expected


@settings(max_examples=400, deadline=None)
@given(spec=SPECS, lots=st.integers(0, 10**11), frac=st.floats(0.001, 0.999))
def test_sizes_between_lots_round_down_to_the_grid(spec, lots, frac):
    lot = 10.0 ** -spec.sz_decimals
    x = (lots + frac) * lot
    out = spec.round_size(x)
    assert out <= x and x - out < lot * (1 + 1e-9)
    assert out == float(Decimal(lots).scaleb(-spec.sz_decimals)) or out == float(
        Decimal(lots + 1).scaleb(-spec.sz_decimals))  # float noise may put x on the next lot exactly
    assert spec.round_size(-x) == -out
