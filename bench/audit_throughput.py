"""Audit log throughput: column buffers encoded in bulk vs one JSON record at a time.

    .venv/bin/python bench/audit_throughput.py [--flips 28000] [--repeat 3]

Records what one order flip of a backtest leaves in the audit log (Intent,
RiskDecision, OrderRequest, OrderAck, Fill) ``--flips`` times into Parquet
segments of 20,000 rows, with ``AuditLog`` (each record's field values
appended to its class's column buffer, the JSON payloads built a column at a
time when a segment is written) and with a baseline in this script that
encodes each record on arrival as the log did before (``to_record``, redact
every value, ``json.dumps``). Both write the same rows (checked); it prints
microseconds per record and the ratio (median of ``--repeat``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flips", type=int, default=28_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    import pyarrow as pa
    import pyarrow.parquet as pq

    from hlquant.audit.log import AUDIT_SCHEMA, AuditLog, _default, read_audit, redact
    from hlquant.core.events import (
        Fill,
        Intent,
        OrderAck,
        OrderRequest,
        OrderStatus,
        RiskCode,
        RiskDecision,
        Side,
        Tif,
    )

    evs = []
    for i in range(args.flips):
        t = 1_767_225_600_000 + 60_000 * i
        iid = f"ma:BTC:{t}:{i}"
        cloid = f"0x{i:032x}"
        side = Side.BUY if i % 2 else Side.SELL
        evs += [Intent(t, t, iid, "ma", "BTC", target=0.1537 * int(side), reason=f"cross {int(side):+d}"),
                RiskDecision(t, t, iid, "ma", "BTC", True, "target", 0.3074 * int(side), RiskCode.APPROVED, ""),
                OrderRequest(t, t, cloid, iid, "ma", "BTC", side, 0.3074, None, Tif.IOC, False, None, None),
                OrderAck(t, t, cloid, "BTC", OrderStatus.FILLED, i + 1, 0.3074, 65_012.5 + i, ""),
                Fill(t, t, "BTC", cloid, i + 1, side, 65_012.5 + i, 0.3074, 8.99 + i * 1e-4, "taker", i + 1,
                     "ma", -3.25 + i * 1e-3)]

    class OneAtATime:
        """The baseline: every record encoded (and redacted) as it arrives."""

        def __init__(self, path: Path) -> None:
            self.path, self.rows, self.seq, self.seg = path, [], 0, 0
            path.mkdir()

        def record(self, ev) -> None:
            rec = ev.to_record()
            self.seq += 1
            ident = next((rec[f] for f in ("cloid", "intent_id") if rec.get(f)), "")
            payload = {k: v for k, v in rec.items() if k not in ("kind", "ts_exch", "ts_recv", "agent", "symbol")}
            self.rows.append(("s", self.seq, int(rec["ts_exch"]), int(rec["ts_recv"]), rec["kind"], str(ident),
                              str(rec.get("agent", "") or ""), str(rec.get("symbol", "") or ""),
                              json.dumps(redact(payload), default=_default, separators=(",", ":"))))
            if len(self.rows) >= 20_000:
                self.flush()

        def flush(self) -> None:
            if self.rows:
                cols = list(zip(*self.rows, strict=True))
                table = pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(cols, AUDIT_SCHEMA, strict=True)],
                                             schema=AUDIT_SCHEMA)
                self.seg += 1
                pq.write_table(table, self.path / f"part-{self.seg:06d}.parquet", compression="zstd")
                self.rows = []

    def run(make) -> tuple[float, Path]:
        d = Path(tempfile.mkdtemp(prefix="hlq-audit-bench-"))
        log = make(d / "audit")
        t = time.perf_counter()
        for ev in evs:
            log.record(ev)
        (log.close if hasattr(log, "close") else log.flush)()
        return time.perf_counter() - t, d / "audit"

    new, old = [], []
    for _ in range(args.repeat):
        s, new_dir = run(lambda p: AuditLog(p, "s", 20_000))
        new.append(s)
        s, old_dir = run(OneAtATime)
        old.append(s)
    same = read_audit(new_dir).equals(read_audit(old_dir))
    n = len(evs)
    a, b = statistics.median(new), statistics.median(old)
    print(f"{n:,} audit records ({args.flips:,} order flips), Parquet segments of 20,000 rows, "
          f"median of {args.repeat}:")
    print(f"one record at a time (baseline) {1e6 * b / n:6.2f} us/record")
    print(f"AuditLog, column buffers        {1e6 * a / n:6.2f} us/record")
    print(f"ratio {b / a:.2f}x; identical rows: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
