"""The record of a session is complete, or says exactly what is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hlquant.audit.log import AuditLog, read_audit
from hlquant.audit.verify import verify
from hlquant.core.events import Fill, Intent, OrderRequest, RiskCode, RiskDecision, Side, Tif

ROOT = Path(__file__).resolve().parents[2]


def session(log: AuditLog, n: int, decide: bool = True, order: bool = True, fill: bool = True) -> None:
    for i in range(n):
        it = Intent(i, i, f"a:BTC:{i}:{i}", "a", "BTC", target=1.0)
        log.record(it)
        if decide:
            log.record(RiskDecision(i, i, it.intent_id, "a", "BTC", True, "target", 0.01, RiskCode.APPROVED))
        if order:
            log.record(OrderRequest(i, i, f"0x{i:032x}", it.intent_id, "a", "BTC", Side.BUY, 0.01, 1.0, Tif.IOC))
        if fill:
            log.record(Fill(i, i, "BTC", f"0x{i:032x}", i, Side.BUY, 1.0, 0.01, 0.0, "taker"))


def test_a_complete_session_verifies(tmp_path):
    with AuditLog(tmp_path / "audit", "s1", flush_every=7) as log:
        session(log, 20)
    rep = verify(tmp_path)
    assert rep.ok, rep
    assert rep.logs == {"audit": 80}


def test_missing_decisions_orders_and_fills_are_named(tmp_path):
    with AuditLog(tmp_path / "audit", "s1") as log:
        session(log, 3)
        log.record(Intent(9, 9, "a:BTC:9:9", "a", "BTC", target=2.0))  # never decided
        log.record(OrderRequest(9, 9, "0xdead", "nobody", "a", "BTC", Side.BUY, 0.01, 1.0, Tif.IOC))
        log.record(Fill(9, 9, "BTC", "", 77, Side.SELL, 1.0, 0.01, 0.0, "taker"))  # not ours
    rep = verify(tmp_path)
    assert not rep.ok
    assert rep.intents_without_decision == ["a:BTC:9:9"]
    assert rep.orders_without_approval == ["0xdead"]
    assert rep.fills_without_order == ["BTC:77"]


CRASHER = """
import os, sys
from hlquant.audit.log import AuditLog
from tests.audit.test_verify import session
log = AuditLog(sys.argv[1], "crashing", flush_every=50)
session(log, 30)          # 120 records: 100 written in two segments, 20 only in memory
os.kill(os.getpid(), 9)   # kill -9: the buffer is gone
"""


def test_a_crash_shows_as_a_gap_and_the_log_resumes_after_it(tmp_path):
    d = tmp_path / "audit"
    p = subprocess.run([sys.executable, "-c", CRASHER, str(d)], cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == -signal.SIGKILL
    assert read_audit(d)["seq"].max() == 100  # what reached disk
    with AuditLog(d, "crashing") as log:  # the component restarts and goes on
        session(log, 2)
    seqs = read_audit(d)["seq"].tolist()
    assert seqs[:100] == list(range(1, 101)) and seqs[100] > 120  # numbering resumes after the lost rows
    rep = verify(tmp_path)
    assert [(g[1], g[2]) for g in rep.gaps] == [(100, seqs[100])]


def test_a_clean_close_leaves_no_gap(tmp_path):
    d = tmp_path / "audit"
    with AuditLog(d, "s") as log:
        session(log, 5)
    with AuditLog(d, "s") as log:
        session(log, 5)
    assert read_audit(d)["seq"].tolist() == list(range(1, 41))
    assert verify(tmp_path).ok


@pytest.mark.redis
def test_rows_synced_to_the_stream_fill_the_gap(tmp_path):
    import redis

    from hlquant.storage.writer import audit_mirror
    from tests.conftest import require_server

    r = redis.Redis(host="127.0.0.1", port=6379, db=11)
    try:
        r.ping()
    except redis.ConnectionError:
        require_server(False, "Redis on 127.0.0.1:6379")
    ns = f"v{os.getpid()}"
    d = tmp_path / "audit"
    log = AuditLog(d, "risk", flush_every=50, mirror=audit_mirror(r, ns, "risk"))
    session(log, 30)
    log.sync()  # what the router does before any order leaves
    del log  # the crash: the process dies, its buffer never reaches Parquet
    with AuditLog(d, "risk") as log2:
        session(log2, 1)
    assert verify(tmp_path).gaps  # locally, records are missing
    rep = verify(tmp_path, "redis://127.0.0.1:6379/11", ns)
    assert rep.ok, rep  # but the stream holds them: nothing is lost
    for k in r.scan_iter(f"{ns}:*"):
        r.delete(k)
