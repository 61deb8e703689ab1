import json

import pandas as pd

from hlquant.audit.log import AuditLog, read_audit, redact
from hlquant.core.events import Intent, RiskDecision, Side


def test_segments_append_only_and_resume(tmp_path):
    log = AuditLog(tmp_path, "s1", flush_every=3)
    for i in range(7):
        log.record(Intent(i, i + 1, f"a:BTC:{i}:{i}", "a", "BTC", target=float(i)))
    log.close()
    parts = sorted(tmp_path.glob("part-*.parquet"))
    assert len(parts) == 3  # 3 + 3 + 1
    assert not list(tmp_path.glob("*.tmp"))
    df = read_audit(tmp_path)
    assert df["seq"].tolist() == list(range(1, 8))
    assert df["id"].iloc[2] == "a:BTC:2:2"
    assert (df["ts_recv"] - df["ts_exch"] == 1).all()
    # a new log on the same directory continues numbering and never overwrites
    log2 = AuditLog(tmp_path, "s1", flush_every=100)
    assert log2.seq == 7
    log2.record(RiskDecision(9, 9, "a:BTC:6:6", "a", "BTC", False, "stale price"))
    log2.close()
    df = read_audit(tmp_path)
    assert df["seq"].tolist() == list(range(1, 9))
    assert json.loads(df["payload"].iloc[-1])["reason"] == "stale price"


def test_unflushed_rows_are_the_only_loss_on_crash(tmp_path):
    log = AuditLog(tmp_path, "s", flush_every=5)
    for i in range(12):
        log.record(Intent(i, i, f"id{i}", "a", "BTC", side=Side.BUY, size=1.0))
    # simulate a crash: no close(); the 10 flushed rows are readable
    df = read_audit(tmp_path)
    assert len(df) == 10


def test_secrets_are_redacted_in_payloads():
    key = "0x" + "ab" * 32
    assert redact({"private_key": "x", "nested": {"api_key": 1}, "note": f"k={key}"}) == {
        "private_key": "***", "nested": {"api_key": "***"}, "note": "k=***"
    }
    log = AuditLog(None, "s")
    log.record_dict({"kind": "Config", "ts_exch": 0, "ts_recv": 0, "secret_key": key, "msg": key})
    df = log.frame()
    assert key not in df.to_csv()
    assert isinstance(df, pd.DataFrame) and len(df) == 1
