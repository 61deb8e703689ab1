#!/usr/bin/env bash
# Run a command with every core kept busy by a spinning process (the "busy machine" of
# issue 18), e.g.  bash scripts/under_load.sh .venv/bin/python -m pytest tests/live/test_crash_drill.py
# The spinners stop when the command ends, whatever its outcome.
set -uo pipefail
n=$(nproc)
pids=()
for _ in $(seq "$n"); do
  python3 -c "while True: pass" &
  pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
echo "under load: $n busy loops (load average $(cut -d' ' -f1 /proc/loadavg))" >&2
"$@"
