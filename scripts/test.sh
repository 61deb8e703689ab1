#!/usr/bin/env bash
# Set up everything the test suite needs (venv, PostgreSQL, Redis, Redis Cluster,
# in-process ClickHouse, Jupyter for the notebooks, Debian's chromium for the report
# tests) idempotently, then run lint and the whole test suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,notebooks,clickhouse,cluster,archive,bench,models
if [ -f scripts/services.sh ]; then bash scripts/services.sh; fi
bash scripts/browser.sh   # Debian's chromium for the monitoring page's browser test
.venv/bin/ruff check hlquant strategies tests bench
.venv/bin/python -m pytest -p no:cacheprovider "$@"
