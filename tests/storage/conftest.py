from __future__ import annotations

import os
import uuid

import pytest

from tests.conftest import require_server

#: the PostgreSQL database the storage tests use; point it at a TimescaleDB server
#: (e.g. postgresql://postgres@127.0.0.1:5433/test) to run the suite on the hypertable layout
DSN = os.environ.get("HLQUANT_TEST_PG_DSN") or "postgresql://postgres@127.0.0.1:5432/test"


def server_has_timescaledb() -> bool:
    """Whether the test server can run TimescaleDB, asked independently of the store's
    own detection: the extension is in the database or its library is preloaded."""
    import psycopg

    with psycopg.connect(DSN, connect_timeout=3) as c:
        if c.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
            return True
        preload = c.execute("SHOW shared_preload_libraries").fetchone()[0]
    return "timescaledb" in [p.strip().strip('"').rsplit("/", 1)[-1] for p in preload.split(",")]


@pytest.fixture()
def pg_store():
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:  # the server, not the database: the store creates its database when missing
        psycopg.connect(make_conninfo(DSN, dbname="postgres"), connect_timeout=3).close()
    except psycopg.OperationalError:
        where = conninfo_to_dict(DSN)
        require_server(False, f"PostgreSQL at {where.get('host')}:{where.get('port', 5432)} (HLQUANT_TEST_PG_DSN)")
    from hlquant.storage.postgres import PostgresStore

    st = PostgresStore(DSN, f"t_{uuid.uuid4().hex[:10]}")
    st.create()
    yield st
    st.drop()
    st.close()
