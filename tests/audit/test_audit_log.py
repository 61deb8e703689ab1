import json

import pandas as pd

from hlquant.audit.log import AuditLog, read_audit
from hlquant.core.events import Intent, RiskDecision, Side
from hlquant.core.secrets import redact


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


# --- columnar buffers: the same records, encoded in bulk -----------------------------
def _reference_row(session: str, seq: int, rec: dict) -> tuple:
    """The audit row as the log wrote it one record at a time (the contract the bulk
    encoder keeps): common columns, then the redacted payload as compact JSON."""
    from hlquant.audit.log import _default

    common = {"kind", "ts_exch", "ts_recv", "agent", "symbol"}
    ident = next((rec[f] for f in ("cloid", "intent_id") if rec.get(f)), "")
    payload = {k: v for k, v in rec.items() if k not in common}
    return (session, seq, int(rec.get("ts_exch", 0)), int(rec.get("ts_recv", 0)), rec.get("kind", "?"),
            str(ident), str(rec.get("agent", "") or ""), str(rec.get("symbol", "") or ""),
            json.dumps(redact(payload), default=_default, separators=(",", ":")))


def _every_kind_of_record():
    import numpy as np

    from hlquant.core.events import (
        AgentError,
        CancelAck,
        CancelRequest,
        ErrorCode,
        Fill,
        FundingPayment,
        HeartbeatLoss,
        KillSwitch,
        OrderAck,
        OrderRequest,
        OrderStatus,
        RiskCode,
        Superseded,
        Tif,
    )

    key = "0x" + "cd" * 32
    evs = []
    for i in range(40):
        evs += [
            Intent(i, i + 1, f"a:BTC:{i}:{i}", "a", "BTC", target=float(i) - 20.5),
            Intent(i, i, f"b:ETH:{i}:{i}", "b", "ETH", side=Side.SELL, size=0.1 * i + 0.01, px=None,
                   tif=Tif.IOC, reduce_only=bool(i % 2), trigger_px=3000.0 + i if i % 3 else None,
                   tpsl="sl" if i % 3 else None, reason=f"why é {i}"),
            RiskDecision(i, i, f"a:BTC:{i}:{i}", "a", "BTC", bool(i % 2), f"netted; {key}" if i == 7 else "ok",
                         float("nan") if i == 3 else -0.5 * i, RiskCode(i % 12), "max_leverage" if i % 5 else ""),
            OrderRequest(i, i, f"0x{i:032x}", f"a:BTC:{i}:{i}", "a", "BTC", Side.BUY, 0.001 * (i + 1),
                         65000.5 + i if i % 2 else None, Tif(i % 3), False, None, None),
            OrderAck(i, i, f"0x{i:032x}" if i % 4 else "", "BTC", OrderStatus(i % 8), i, 0.5, 1e-7 * i,
                     "" if i % 6 else 'quote " and \\ backslash', ErrorCode.NONE if i % 2 else ErrorCode.RATE_LIMITED),
            Fill(i, i, "SOL", f"0x{i:032x}", i, Side.SELL, np.float64(150.25) if i == 9 else 150.0 + i, 1.0, 0.0675,
                 "taker", i, "a" if i % 2 else "", float("inf") if i == 11 else 0.0),
            FundingPayment(i, i, "ETH", 1.25e-5, -0.3, 3100.0, -0.01),
            CancelRequest(i, i, "BTC", f"0x{i:032x}", i, "heartbeat lost"),
            CancelAck(i, i, "BTC", "", i, i % 2 == 0, "", "r", ErrorCode.NOT_FOUND),
        ]
        if i % 10 == 0:
            evs += [KillSwitch(i, i, "max_drawdown 50% reached"),
                    HeartbeatLoss(i, i, "a", i - 5, [f"a:BTC:{i}:1"], [f"0x{i:032x}"]),
                    Superseded(i, i, f"0x{i:032x}", "id", "a", "BTC", ["0x1", "0x2"]),
                    AgentError(i, i, "a", "BTC", "ValueError: boom", f"tb {key}", "raise")]
    return evs


def test_bulk_encoding_writes_the_same_rows_as_one_record_at_a_time(tmp_path):
    evs = _every_kind_of_record()
    mirrored = []
    log = AuditLog(tmp_path, "sess", flush_every=137, mirror=mirrored.extend)
    expected = []
    for ev in evs:
        seq = log.record(ev)
        expected.append(_reference_row("sess", seq, ev.to_record()))
    seq = log.record(evs[0], note="extra field", api_key="hidden")
    expected.append(_reference_row("sess", seq, {**evs[0].to_record(), "note": "extra field", "api_key": "hidden"}))
    seq = log.record_dict({"kind": "Config", "ts_exch": 5, "ts_recv": 6, "secret": "s", "n": [1, 2.5]})
    expected.append(_reference_row("sess", seq, {"kind": "Config", "ts_exch": 5, "ts_recv": 6, "secret": "s",
                                                  "n": [1, 2.5]}))
    log.close()
    got = [tuple(r) for r in read_audit(tmp_path).itertuples(index=False)]
    assert got == expected
    assert [tuple(r.values()) for r in mirrored] == expected
    assert "cd" * 32 not in read_audit(tmp_path).to_csv()
    mem = AuditLog(None, "sess", flush_every=50)
    for ev in evs:
        mem.record(ev)
    assert [tuple(r) for r in mem.frame().itertuples(index=False)] == expected[: len(evs)]


def test_record_encodes_nothing_until_flush(monkeypatch):
    """A record is appended to its column buffer as it is: the JSON payloads are built in
    bulk when the buffer is written, not one by one on the hot path."""
    import hlquant.audit.log as audit_log

    log = AuditLog(None, "s", flush_every=10**9)
    evs = [e for e in _every_kind_of_record() if type(e).__name__ in ("Intent", "RiskDecision", "OrderRequest",
                                                                     "OrderAck", "Fill")]

    def boom(*a, **k):
        raise AssertionError("encoded a record on the hot path")

    with monkeypatch.context() as m:
        m.setattr(json, "dumps", boom)
        m.setattr(json.JSONEncoder, "encode", boom)
        m.setattr(audit_log, "redact", boom)
        for ev in evs:
            log.record(ev)
    assert len(log.frame()) == len(evs)
