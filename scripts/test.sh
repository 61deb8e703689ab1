#!/usr/bin/env bash
# Set up everything the test suite needs (venv, PostgreSQL, Redis, Redis Cluster,
# in-process ClickHouse) idempotently, then run lint and the whole test suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,clickhouse,cluster,archive,bench
if [ -f scripts/services.sh ]; then bash scripts/services.sh; fi
.venv/bin/ruff check hlquant strategies tests bench
.venv/bin/python -m pytest -p no:cacheprovider "$@"
