"""Config-driven backtests and their replay.

``run_backtest(cfg, out_dir)`` builds everything from a config tree, runs it,
writes the report, the audit log and ``run.json`` (redacted config, data
fingerprint, metrics, warnings). ``run.json`` is written when the run starts
(``status: running``) and rewritten when it ends: ``ok``, or ``failed`` with
the error, so a folder is never just a log. ``replay(run_dir)`` rebuilds the
session from those files, re-runs it and compares every decision with the
audit log: a session is reproducible when the two are identical.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hlquant.audit.log import read_audit
from hlquant.backtest.engine import Backtest, BacktestResult
from hlquant.backtest.runs import RunStatus, write_run_json
from hlquant.config.build import load_market, to_dict
from hlquant.config.spec import KernelSpec
from hlquant.core.errors import ConfigError
from hlquant.core.secrets import redact

DECISION_KINDS = (
    "Intent", "RiskDecision", "OrderRequest", "OrderAck", "Fill", "CancelRequest", "CancelAck",
    "FundingPayment", "HeartbeatLoss", "DuplicateOrder", "KillSwitch", "Superseded", "AgentError",
)


def build_backtest(cfg: Any, market: Any = None, out_dir: str | Path | None = None,
                   session: str | None = None, progress: bool | None = None) -> Backtest:
    c = to_dict(cfg)
    spec = KernelSpec.from_config(c, mode="sim")  # a bad config fails before the data is read
    market = market if market is not None else load_market(c.get("data", {}))
    return Backtest(
        market, spec=spec, out_dir=out_dir, session=session,
        progress=bool(c.get("progress", False)) if progress is None else progress,
    )


def run_backtest(cfg: Any, out_dir: str | Path | None = None, market: Any = None,
                 progress: bool | None = None, report: bool = True) -> BacktestResult:
    """Run the backtest a config describes; with ``out_dir``, write its files there
    (``run.json`` says ``running`` until the run ends ``ok`` or ``failed``)."""
    if out_dir is None:
        return _run(to_dict(cfg), None, market, progress, report)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    c: dict = {}
    try:
        c = to_dict(cfg)
        write_run_json(out, {"status": RunStatus.RUNNING, "started": started, "config": redact(c)})
        return _run(c, out, market, progress, report, started)
    except BaseException as e:
        write_run_json(out, {
            "status": RunStatus.FAILED, "started": started, "finished": time.time(), "config": redact(c),
            "error": {"type": type(e).__name__, "message": (str(e).splitlines() or [""])[0]}})
        raise


def _run(c: dict, out: Path | None, market: Any, progress: bool | None, report: bool,
         started: float = 0.0) -> BacktestResult:
    bt = build_backtest(c, market=market, out_dir=out, progress=progress)
    t0 = time.perf_counter()
    result = bt.run()
    result.stats["run_seconds"] = time.perf_counter() - t0
    if out is not None:
        if report:
            from hlquant.report.files import write_report

            t0 = time.perf_counter()
            result.files = dict(write_report(result.artifacts, out))
            result.stats["report_seconds"] = time.perf_counter() - t0
        write_run_json(out, {
            "status": RunStatus.OK,
            "started": started,
            "finished": time.time(),
            "session": bt.session,
            "config": redact(c),
            "data": {"fingerprint": bt.market.fingerprint(), "symbols": list(bt.market.symbols),
                     "events": len(bt.market), "meta": _jsonable(getattr(bt.market, "meta", {}))},
            "metrics": {k: _num(v) for k, v in result.metrics.items()},
            "warnings": [w.to_dict() for w in result.artifacts.warnings],
            "stats": _jsonable(result.stats),
        })
    return result


@dataclass
class ReplayReport:
    identical: bool
    compared: int
    original: int
    replayed: int
    first_mismatch: dict | None

    def __str__(self) -> str:
        if self.identical:
            return f"replay identical: {self.compared} decision events match"
        return (f"replay DIFFERS: original {self.original} vs replayed {self.replayed} decision "
                f"events; first mismatch: {self.first_mismatch}")


def _decisions(df: pd.DataFrame) -> pd.DataFrame:
    d = df[df["kind"].isin(DECISION_KINDS)]
    return d[["ts_exch", "kind", "id", "agent", "symbol", "payload"]].reset_index(drop=True)


def replay(run_dir: str | Path, market: Any = None) -> ReplayReport:
    """Rebuild a session from ``run.json`` + its audit log and compare decisions."""
    run_dir = Path(run_dir)
    info_path = run_dir / "run.json"
    if not info_path.exists():
        raise ConfigError(f"{run_dir} has no run.json: not a backtest run directory")
    info = json.loads(info_path.read_text())
    cfg = info["config"]
    market = market if market is not None else load_market(cfg.get("data", {}))
    fp = market.fingerprint()
    if fp != info["data"]["fingerprint"]:
        raise ConfigError(
            f"data changed since the run: fingerprint {fp[:12]} != recorded {info['data']['fingerprint'][:12]}"
        )
    bt = build_backtest(cfg, market=market, out_dir=None, session=info["session"], progress=False)
    res = bt.run()
    original = _decisions(read_audit(run_dir / "audit"))
    replayed = _decisions(res.audit.frame())
    n = min(len(original), len(replayed))
    mismatch = None
    if n:
        a, b = original.iloc[:n], replayed.iloc[:n]
        neq = ~(a == b).all(axis=1)
        if neq.any():
            i = int(neq.to_numpy().argmax())
            mismatch = {"index": i, "original": a.iloc[i].to_dict(), "replayed": b.iloc[i].to_dict()}
    if mismatch is None and len(original) != len(replayed):
        mismatch = {"index": n, "original": len(original), "replayed": len(replayed)}
    return ReplayReport(mismatch is None, n, len(original), len(replayed), mismatch)


def _num(v: Any) -> Any:
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def _jsonable(o: Any) -> Any:
    return json.loads(json.dumps(o, default=str))
