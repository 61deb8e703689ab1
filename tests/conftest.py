"""Shared fixtures. Server fixtures live beside the tests that need them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hlquant.core.assets import DEFAULT_ASSETS  # noqa: E402
from hlquant.core.events import CancelAck, OrderAck, OrderStatus  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_server(ok: bool, what: str) -> None:
    """Integration tests need real servers: fail under CI, skip on a dev box."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true but is not reachable")
    pytest.skip(f"{what} not reachable")


class RecordingVenue:
    """A venue double for unit tests of the router and risk engine: records
    every call and acknowledges orders as resting (no matching)."""

    name = "recording"

    def __init__(self) -> None:
        self.submitted: list = []
        self.cancelled: list = []
        self.listeners: list = []
        self._oid = 0

    def assets(self):
        return dict(DEFAULT_ASSETS)

    def add_listener(self, listener) -> None:
        self.listeners.append(listener)

    def submit(self, orders):
        acks = []
        for o in orders:
            self.submitted.append(o)
            self._oid += 1
            acks.append(OrderAck(o.ts_exch, o.ts_exch, o.cloid, o.symbol, OrderStatus.OPEN, self._oid))
        return acks

    def cancel(self, cancels):
        self.cancelled.extend(cancels)
        return [CancelAck(c.ts_exch, c.ts_exch, c.symbol, c.cloid, c.oid, True, reason=c.reason) for c in cancels]

    def modify(self, cloid, order):
        raise NotImplementedError

    def order_status(self, cloid):
        return None

    def open_orders(self):
        return []

    def positions(self):
        return {}

    def schedule_cancel(self, at_ms):
        pass

    def set_leverage(self, symbol, leverage, cross=True):
        pass


@pytest.fixture
def recording_venue() -> RecordingVenue:
    return RecordingVenue()
