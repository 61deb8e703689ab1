"""Fixtures of the live tests."""

from __future__ import annotations

import pytest
import redis

from tests.conftest import require_server


@pytest.fixture()
def redis_ok() -> None:
    """The shared Redis on 127.0.0.1:6379 is up (fails under CI=true when it is not)."""
    try:
        redis.Redis(host="127.0.0.1", port=6379).ping()
    except redis.ConnectionError:
        require_server(False, "Redis on 127.0.0.1:6379")
