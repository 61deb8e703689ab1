"""Errors a person can read (issue 11, item 13): a ConfigError, DataError, PreflightError,
a missing database table and a network error print one line ``error: ...`` and exit
non-zero, on every subcommand; the traceback only with HLQUANT_DEBUG=1."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from hlquant.core.errors import HlquantError
from hlquant.fakeexchange.testing import free_port
from hlquant.promote.preflight import Check, PreflightError
from tests.conftest import require_server

ROOT = Path(__file__).resolve().parents[2]
PG_DSN = os.environ.get("HLQUANT_TEST_PG_DSN") or "postgresql://postgres@127.0.0.1:5432/test"


def hlquant(*args: str, cwd: Path, debug: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("HLQUANT_DEBUG", None)
    env.pop("HLQUANT_PRIVATE_KEY", None)
    if debug:
        env["HLQUANT_DEBUG"] = "1"
    return subprocess.run([sys.executable, "-m", "hlquant.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def one_line_error(p: subprocess.CompletedProcess, *expect: str, code: int = 1) -> str:
    """The process failed with ``code`` and its last stderr line is ``error: ...`` holding
    ``expect``; no traceback anywhere (log lines before it are fine)."""
    assert p.returncode == code, (p.returncode, p.stdout[-1500:], p.stderr[-3000:])
    assert "Traceback" not in p.stderr + p.stdout, p.stderr[-3000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), p.stderr[-3000:]
    for e in expect:
        assert e in last, last
    return last


def closed_url(scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{free_port()}"  # a port nobody listens on


@pytest.fixture
def pg_dsn() -> str:
    import psycopg
    from psycopg.conninfo import make_conninfo

    try:  # the server; the store creates the test database when missing
        psycopg.connect(make_conninfo(PG_DSN, dbname="postgres"), connect_timeout=3).close()
    except psycopg.OperationalError:
        require_server(False, "PostgreSQL (HLQUANT_TEST_PG_DSN)")
    return PG_DSN


# ------------------------------------------------------------------ hlquant's own errors
def test_config_error_is_one_line_and_the_traceback_needs_debug(tmp_path):
    p = hlquant("backtest", "risk.max_leverage=-1", f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    one_line_error(p, "risk.max_leverage must be a positive finite number, got -1.0")
    d = hlquant("backtest", "risk.max_leverage=-1", f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path, debug=True)
    assert d.returncode != 0 and "Traceback" in d.stderr and "ConfigError" in d.stderr


def test_data_error_is_one_line(tmp_path):
    p = hlquant("backtest", "data=files", f"data.path={tmp_path / 'none'}", f"hydra.run.dir={tmp_path / 'r'}",
                cwd=tmp_path)
    one_line_error(p, f"{tmp_path / 'none'}: no such file or directory")


def test_preflight_error_is_an_hlquant_error_on_one_line(tmp_path):
    err = PreflightError([Check("risk config", True, "ok"), Check("backtest", False, "sent no order\nat all"),
                          Check("credentials", False, "no signer key")])
    assert isinstance(err, HlquantError) and "\n" not in str(err)
    assert str(err) == ("pre-flight refused: [FAIL] backtest: sent no order at all; "
                        "[FAIL] credentials: no signer key")
    p = hlquant("live", "strategy=ma_cross", "data.end=2026-01-06", f"hydra.run.dir={tmp_path / 'l'}", cwd=tmp_path)
    one_line_error(p, "pre-flight refused", "[FAIL] credentials: no signer key")


@pytest.mark.parametrize(("args", "expect"), [
    (["component", "bogus"], "component: expected a role"),
    (["component", "agent"], "component agent needs a NAME"),
    (["replay", "/nonexistent-run"], "/nonexistent-run has no run.json"),
    (["backtest", "mode=live"], "mode=live contradicts `hlquant backtest`"),
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["generate-data", "--out", "/dev/null/sample"], "/dev/null/sample"),
])
def test_usage_errors_of_every_subcommand_are_one_line(tmp_path, args, expect):
    one_line_error(hlquant(*args, cwd=tmp_path), expect)


def test_record_import_errors_use_the_same_format(tmp_path):
    p = hlquant("record", "import", str(tmp_path / "nope"), "--no-db", "--out", str(tmp_path / "o"), cwd=tmp_path)
    one_line_error(p, "record import:", "nope: no such file or directory", code=2)


# ------------------------------------------------------------------ network errors
def test_unreachable_exchange_is_one_line_for_paper_and_component(tmp_path):
    url = closed_url()
    p = hlquant("paper", f"live.url={url}", f"hydra.run.dir={tmp_path / 'p'}", cwd=tmp_path)
    one_line_error(p, "info meta: no reply", "Connection refused")
    p = hlquant("component", "router", "r1", f"live.url={url}", f"hydra.run.dir={tmp_path / 'c'}", cwd=tmp_path)
    one_line_error(p, "info meta: no reply")


def test_unreachable_redis_is_one_line_and_debug_shows_the_traceback(tmp_path):
    # a starting component waits live.redis_wait_s for Redis (one log line), then gives up
    args = ["component", "features", f"live.redis_url={closed_url('redis')}/0", f"live.url={closed_url()}",
            "live.redis_wait_s=1", f"hydra.run.dir={tmp_path / 'f'}"]
    p = hlquant(*args, cwd=tmp_path)
    one_line_error(p, "redis: Error 111 connecting to 127.0.0.1")
    assert len([ln for ln in p.stdout.splitlines() if "redis unavailable" in ln]) == 1, p.stdout
    d = hlquant(*args, cwd=tmp_path, debug=True)
    assert d.returncode != 0 and "Traceback" in d.stderr and "redis.exceptions.ConnectionError" in d.stderr


def test_unreachable_postgres_is_one_line(tmp_path):
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    p = hlquant("backtest", "data=postgres", f"data.dsn={dsn}", f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    one_line_error(p, "cannot connect to PostgreSQL at 127.0.0.1")
    p = hlquant("ingest", "--dsn", dsn, "files", str(tmp_path), cwd=tmp_path)
    one_line_error(p, "cannot connect to PostgreSQL at 127.0.0.1")


@pytest.mark.postgres
def test_ingest_from_an_unreachable_exchange_is_one_line(tmp_path, pg_dsn):
    schema = f"t_{uuid.uuid4().hex[:10]}"
    try:
        p = hlquant("ingest", "--dsn", pg_dsn, "--schema", schema, "hyperliquid", "--url", closed_url(),
                    "--coins", "BTC", "--start", "2026-01-01", "--end", "2026-01-02", cwd=tmp_path)
        one_line_error(p, "info candleSnapshot: no reply")
        p = hlquant("ingest", "--dsn", pg_dsn, "--schema", schema, "hyperliquid", "--url", "http://no-such-host.invalid",
                    "--coins", "BTC", "--start", "2026-01-01", "--end", "2026-01-02", cwd=tmp_path)
        one_line_error(p, "info candleSnapshot: no reply", "no-such-host.invalid")
    finally:
        drop_schema(pg_dsn, schema)


@pytest.mark.postgres
def test_recording_a_feed_that_never_connects_fails(tmp_path, pg_dsn):
    schema = f"t_{uuid.uuid4().hex[:10]}"
    url = closed_url()
    try:
        p = hlquant("record", "--dsn", pg_dsn, "--schema", schema, "live", "--url", url, "--coins", "BTC",
                    "--duration", "2", cwd=tmp_path)
        one_line_error(p, f"record live: never connected to ws{url[4:]}/ws")
    finally:
        drop_schema(pg_dsn, schema)


# ------------------------------------------------------------------ a missing table
@pytest.mark.postgres
def test_missing_or_empty_schema_is_a_one_line_data_error(tmp_path, pg_dsn):
    from hlquant.storage.postgres import PostgresStore

    missing = f"nope_{uuid.uuid4().hex[:8]}"
    p = hlquant("backtest", "data=postgres", f"data.dsn={pg_dsn}", f"data.schema={missing}",
                f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    one_line_error(p, f"data.schema='{missing}': relation \"{missing}.symbols\" does not exist",
                   f"hlquant ingest --schema {missing}")
    empty = f"t_{uuid.uuid4().hex[:10]}"
    with PostgresStore(pg_dsn, empty) as st:
        st.create()
    try:
        p = hlquant("backtest", "data=postgres", f"data.dsn={pg_dsn}", f"data.schema={empty}",
                    f"hydra.run.dir={tmp_path / 'r2'}", cwd=tmp_path)
        one_line_error(p, f"data.schema='{empty}': no market data in database")
    finally:
        drop_schema(pg_dsn, empty)


def drop_schema(dsn: str, schema: str) -> None:
    from hlquant.storage.postgres import PostgresStore

    with PostgresStore(dsn, schema) as st:
        st.drop()
