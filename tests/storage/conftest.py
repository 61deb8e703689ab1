from __future__ import annotations

import uuid

import pytest

from tests.conftest import require_server

DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture()
def pg_store():
    import psycopg

    try:
        psycopg.connect(DSN, connect_timeout=3).close()
    except psycopg.OperationalError:
        require_server(False, "PostgreSQL on 127.0.0.1:5432 (database test)")
    from hlquant.storage.postgres import PostgresStore

    st = PostgresStore(DSN, f"t_{uuid.uuid4().hex[:10]}")
    st.create()
    yield st
    st.drop()
    st.close()
