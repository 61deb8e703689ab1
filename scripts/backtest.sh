#!/usr/bin/env bash
# Set up (first run only) and run the default backtest on the bundled sample data.
# Extra arguments are Hydra overrides, e.g. scripts/backtest.sh strategy=funding_carry risk.max_leverage=2
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/hlquant backtest "$@"
