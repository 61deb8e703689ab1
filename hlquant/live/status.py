"""The console status line and ``status.json`` of a running session.

Every ``live.status_every_s`` seconds a session prints one line (equity, PnL
split, positions, the last fill, feed lag and reconnects, open orders) and
rewrites ``status.json`` in its folder (write to a temporary file, then rename:
a reader never sees half a file). The final ``status.json`` is written once more
when the session ends, with ``running: false``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO


def _num(v: Any, fmt: str = ",.2f") -> str:
    return "-" if v is None else format(v, fmt)


def status_line(snap: Mapping[str, Any]) -> str:
    """One line a person can read at a glance (from ``SessionTelemetry.snapshot()``)."""
    up = int(snap.get("uptime_s") or 0)
    pnl = snap.get("pnl") or {}
    pos = " ".join(f"{p['symbol']} {p['size']:+.6g}" for p in snap.get("positions") or [] if p.get("size"))
    fills = snap.get("fills") or []
    if fills:
        f = fills[0]
        ago = (snap["time"] - f["ts"]) / 1000.0 if f.get("ts") else None
        last = f"{f['symbol']} {f['side']} {f['sz']:.6g}@{f['px']:.6g}" + (f" {ago:.0f}s ago" if ago is not None else "")
    else:
        last = "none"
    feed = snap.get("feed") or {}
    lag = (feed.get("lag_ms") or {}).get("p50")
    risk = snap.get("risk") or {}
    kill = f" | KILL SWITCH: {risk.get('kill_reason')}" if risk.get("killed") else ""
    return (f"[{snap.get('mode', '?')} {up // 3600:02d}:{up % 3600 // 60:02d}:{up % 60:02d}] "
            f"equity {_num(snap.get('equity'))} | pnl trading {_num(pnl.get('trading'), '+,.2f')} "
            f"fees {_num(-(pnl.get('fees') or 0.0), '+,.2f')} funding {_num(pnl.get('funding'), '+,.2f')} | "
            f"pos {pos or 'flat'} | last fill {last} | fills {snap.get('fills_total', 0)} | "
            f"feed lag p50 {_num(lag, '.0f')}ms reconnects {feed.get('reconnects', 0)} | "
            f"orders open {len(snap.get('open_orders') or [])}{kill}")


def write_json_atomic(path: str | Path, data: Any) -> Path:
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, p)
    return p


class StatusReporter:
    """Prints the status line and rewrites ``status.json`` (call ``report`` on a timer)."""

    def __init__(self, status: Callable[[], dict[str, Any]], line: Callable[[], str],
                 out_dir: str | Path | None, stream: TextIO | None = None, console: bool = True) -> None:
        self.status, self.line = status, line
        self.path = Path(out_dir) / "status.json" if out_dir is not None else None
        self.stream = stream
        self.console = console
        self.written = 0

    def report(self, running: bool = True) -> dict[str, Any]:
        st = self.status()
        st["running"] = running
        if self.path is not None:
            write_json_atomic(self.path, st)
            self.written += 1
        if running and self.console:
            print(self.line(), file=self.stream or sys.stdout, flush=True)
        return st
