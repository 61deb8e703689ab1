"""Run folders: unique, with a status, and an index over them (``hlquant runs``).

Every backtest folder has a ``run.json`` from its first moment: ``status``
is ``running`` until the run ends ``ok`` or ``failed`` (with the error), so a
crashed run is never mistaken for a folder with a log only; a ``running``
run whose process is gone (same machine) shows as ``died``.

Folders are unique: ``claim_dir`` takes a folder for one run atomically (an
exclusive ``.hlquant-claim`` file), moving to ``<dir>-2``, ``<dir>-3``... when
another run already has it, so two runs started in the same second never
share a folder. The Hydra callback applies it to ``hydra.run.dir`` and
``hydra.sweep.dir`` before Hydra creates them.

``list_runs`` / ``show_run`` / ``compare_runs`` read those folders back: a
table of runs (sweep jobs and walk-forward folds included) sorted by any
metric, one run in full, and two runs side by side (config diff, metrics,
equity curves in a self-contained page).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd

from hlquant.core.errors import ConfigError

CLAIM = ".hlquant-claim"
HEADLINE = ("total_return", "sharpe", "max_drawdown", "n_trades", "hit_rate")


class RunStatus(StrEnum):
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    DIED = "died"  # shown for a ``running`` run whose process no longer exists


def write_run_json(out: Path, info: dict[str, Any]) -> Path:
    """Write ``run.json`` atomically; the first write also records the process (pid, host)."""
    path = Path(out) / "run.json"
    info = {"status": str(info.get("status", RunStatus.RUNNING)), "pid": os.getpid(),
            "host": socket.gethostname(), **{k: v for k, v in info.items() if k != "status"}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2, default=str))
    tmp.replace(path)
    return path


def claim_dir(path: str | Path, tries: int = 1000) -> Path:
    """Take ``path`` (or ``path-2``, ``path-3``...) for one run: the first folder that is
    empty or new and whose claim file this process creates first."""
    base = Path(path)
    for i in range(1, tries + 1):
        cand = base if i == 1 else base.with_name(f"{base.name}-{i}")
        cand.mkdir(parents=True, exist_ok=True)
        if any(True for _ in cand.iterdir()):
            continue  # another run's folder (or being claimed right now)
        try:
            fd = os.open(cand / CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{socket.gethostname()} {os.getpid()} {time.time():.3f}\n")
        return cand
    raise ConfigError(f"no free run folder after {tries} tries beside {base}")


# --- the index -------------------------------------------------------------------------------
@dataclass
class RunRecord:
    """One run folder as ``hlquant runs`` shows it."""

    path: Path
    status: RunStatus
    name: str
    started: float | None
    finished: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    warnings: list[dict] = field(default_factory=list)
    error: dict | None = None
    sweep: Path | None = None  # the sweep folder of a sweep job


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_run(path: str | Path) -> RunRecord:
    """The record of one run folder (its ``run.json``)."""
    d = Path(path)
    info_path = d / "run.json"
    if not info_path.exists():
        raise ConfigError(f"{d} has no run.json: not a run folder")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{info_path}: unreadable ({e})") from None
    status = RunStatus(info.get("status", RunStatus.OK))  # runs from before statuses finished ok
    if (status is RunStatus.RUNNING and info.get("host") == socket.gethostname()
            and info.get("pid") and not _alive(int(info["pid"]))):
        status = RunStatus.DIED
    cfg = info.get("config") or {}
    strategy = cfg.get("strategy") or {}
    sweep = d.parent if (d.parent / "summary.csv").exists() or (d.parent / "multirun.yaml").exists() else None
    return RunRecord(
        path=d, status=status, name=str(strategy.get("name", "")),
        started=info.get("started"), finished=info.get("finished"),
        metrics={k: float(v) for k, v in (info.get("metrics") or {}).items() if isinstance(v, int | float)},
        params={k: v for k, v in strategy.items() if k not in ("agents", "name")},
        config=cfg, warnings=list(info.get("warnings") or ()), error=info.get("error"), sweep=sweep,
    )


def find_runs(roots: list[str | Path]) -> list[RunRecord]:
    """Every run folder (a ``run.json``) under ``roots``."""
    out = []
    for root in roots:
        r = Path(root).expanduser()
        if (r / "run.json").exists():
            out.append(read_run(r))
            continue
        if r.is_dir():
            for p in sorted(r.rglob("run.json")):
                try:
                    out.append(read_run(p.parent))
                except ConfigError:
                    continue
    return out


def _when(t: float | None) -> str:
    return pd.Timestamp(t, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M:%S") if t else ""


def runs_table(records: list[RunRecord], sort: str = "sharpe", ascending: bool = False,
               base: Path | None = None) -> pd.DataFrame:
    """One row per run, sorted by a metric (``sort``; also ``started``), runs without it last."""
    known = sorted({k for r in records for k in r.metrics})
    if records and sort != "started" and sort not in known:
        raise ConfigError(f"--sort {sort!r}: not a metric of these runs; known: {', '.join(known) or 'none'}")
    rows = []
    for r in records:
        try:
            where = str(r.path.relative_to(base)) if base else str(r.path)
        except ValueError:
            where = str(r.path)
        swept = ", ".join(f"{k}={v}" for k, v in r.params.items() if not isinstance(v, list | dict))
        row = {"run": where, "status": str(r.status), "started": _when(r.started), "strategy": r.name,
               "params": swept[:60]}
        row.update({k: r.metrics.get(k) for k in (sort, *HEADLINE) if k != "started"})
        row["note"] = (f"{r.error.get('type')}: {r.error.get('message', '')}"[:80] if r.error
                       else "; ".join(w.get("code", "") for w in r.warnings if w.get("code") != "short_run"))
        rows.append(row)
    df = pd.DataFrame(rows)
    if not len(df):
        return df
    return df.sort_values(sort, ascending=ascending, kind="stable", na_position="last").reset_index(drop=True)


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists kept whole)."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def config_diff(a: dict, b: dict) -> pd.DataFrame:
    """Keys whose values differ between two configs (missing on one side shown as '')."""
    fa, fb = flatten(a), flatten(b)
    keys = sorted(k for k in set(fa) | set(fb) if fa.get(k, "<missing>") != fb.get(k, "<missing>"))
    return pd.DataFrame([{"key": k, "A": fa.get(k, ""), "B": fb.get(k, "")} for k in keys],
                        columns=["key", "A", "B"])


def metrics_side_by_side(a: RunRecord, b: RunRecord) -> pd.DataFrame:
    keys = list(dict.fromkeys([*a.metrics, *b.metrics]))
    rows = [{"metric": k, "A": a.metrics.get(k), "B": b.metrics.get(k),
             "B - A": (b.metrics[k] - a.metrics[k]) if k in a.metrics and k in b.metrics else None}
            for k in keys]
    return pd.DataFrame(rows, columns=["metric", "A", "B", "B - A"])


def compare_page(a: RunRecord, b: RunRecord, out: str | Path) -> Path:
    """A self-contained page: both equity curves (as return on initial cash), the config
    diff and the metrics side by side."""
    import html

    import plotly.graph_objects as go

    from hlquant.report.html import Page, downsample, table, time_ms

    fig = go.Figure()
    for label, r, color in (("A", a, "#1f77b4"), ("B", b, "#d62728")):
        p = r.path / "equity.parquet"
        if not p.exists():
            continue
        eq = pd.read_parquet(p)["equity"]
        init = (r.config.get("venue") or {}).get("initial_cash") or float(eq.iloc[0])
        x, y = time_ms(eq.index), eq.to_numpy() / float(init) - 1.0
        i = downsample(x, y)
        fig.add_trace(go.Scatter(x=x[i], y=y[i], mode="lines", name=f"{label}: {r.path.name}",
                                 line={"color": color, "width": 1.3}))
    fig.update_xaxes(type="date")
    fig.update_layout(title="Return on initial cash", yaxis_tickformat=".1%", height=420,
                      hovermode="x unified", legend={"orientation": "h", "y": -0.15})
    page = Page()
    diff = config_diff(a.config, b.config)
    body = (f"<h1>A vs B</h1><div class='sub'>A: {html.escape(str(a.path))}<br>B: {html.escape(str(b.path))}</div>"
            f"<h2>Equity</h2>{page.figure(fig)}"
            f"<h2>Config differences</h2>{table(diff.astype(str)) if len(diff) else 'identical configs'}"
            f"<h2>Metrics</h2>{table(metrics_side_by_side(a, b), {'A': ',.6g', 'B': ',.6g', 'B - A': '+,.6g'})}")
    return page.write(out, "run comparison", body)


# --- hlquant runs -----------------------------------------------------------------------------
RUN_ROOTS = ("runs", "multirun")

RUNS_DOC = """Past runs, sweeps and walk-forwards, read from their folders (run.json).

  hlquant runs list [ROOT...] [--sort METRIC] [--asc] [--limit N] [--status S]
      a table of runs (sweep jobs and walk-forward folds included), best first by METRIC
  hlquant runs show RUN
      one run: status, error or warnings, config, every metric, its files
  hlquant runs compare RUN_A RUN_B [--out compare.html]
      side by side: config differences, metrics and B - A, both equity curves (a page)

defaults: ROOT runs and multirun (below the current folder), --sort sharpe (best first),
--limit 50, --out compare.html; `hlquant runs list --help` for every option."""


def runs_main(argv: Sequence[str]) -> int:
    from hlquant.research.commands import HelpFormatter, parser

    p = parser("hlquant runs", RUNS_DOC)
    sub = p.add_subparsers(dest="what", required=True, metavar="list|show|compare")
    ls = sub.add_parser("list", help="a table of runs sorted by a metric", formatter_class=HelpFormatter)
    ls.add_argument("roots", nargs="*", default=list(RUN_ROOTS),
                    help="folders searched for run folders (run.json)")
    ls.add_argument("--sort", default="sharpe", help="metric to sort by (any key of metrics.json)")
    ls.add_argument("--asc", action="store_true", help="ascending: for metrics where lower is better (fees, turnover)")
    ls.add_argument("--limit", type=int, default=50, help="rows shown (0: all)")
    ls.add_argument("--status", choices=[s.value for s in RunStatus], default=None,
                    help="only runs with this status")
    sh = sub.add_parser("show", help="one run in full", formatter_class=HelpFormatter)
    sh.add_argument("run", help="a run folder (with run.json)")
    cp = sub.add_parser("compare", help="two runs side by side", formatter_class=HelpFormatter)
    cp.add_argument("a", help="run folder A")
    cp.add_argument("b", help="run folder B")
    cp.add_argument("--out", default="compare.html", help="where to write the comparison page")
    args = p.parse_args(list(argv))
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    if args.what == "list":
        recs = find_runs(args.roots)
        if args.status:
            recs = [r for r in recs if r.status.value == args.status]
        if not recs:
            print(f"no runs under {', '.join(args.roots)}")
            return 0
        df = runs_table(recs, args.sort, args.asc, base=Path.cwd())
        if args.limit:
            df = df.head(args.limit)
        print(df.to_string(index=False, float_format=lambda v: f"{v:,.4g}", na_rep=""))
        return 0
    if args.what == "show":
        r = read_run(args.run)
        print(f"{r.path}\n  status: {r.status}" + (f"  ({r.error.get('type')}: {r.error.get('message')})"
                                                    if r.error else ""))
        if r.started:
            took = f", {r.finished - r.started:,.1f} s" if r.finished else ""
            print(f"  started: {pd.Timestamp(r.started, unit='s', tz='UTC')}{took}")
        print(f"  strategy: {r.name} {r.params}")
        data = r.config.get("data") or {}
        print(f"  data: {data}")
        for w in r.warnings:
            print(f"  WARNING ({w.get('code')}): {w.get('message')}")
        if r.metrics:
            print("  metrics:")
            for k, v in r.metrics.items():
                print(f"    {k:>24}: {v:,.6g}")
        files = sorted(x.name for x in r.path.iterdir() if x.is_file() and not x.name.startswith("."))
        print(f"  files: {', '.join(files)}")
        if (r.path / "report.html").exists():
            print(f"  report: {r.path / 'report.html'}")
        return 0
    a, b = read_run(args.a), read_run(args.b)
    print(f"A: {a.path} ({a.status})\nB: {b.path} ({b.status})")
    diff = config_diff(a.config, b.config)
    print("\nconfig differences:" if len(diff) else "\nconfigs are identical")
    if len(diff):
        print(diff.to_string(index=False))
    print("\nmetrics:")
    print(metrics_side_by_side(a, b).to_string(index=False, float_format=lambda v: f"{v:,.6g}", na_rep=""))
    page = compare_page(a, b, args.out)
    print(f"\nequity curves and tables: {page.resolve()}")
    return 0
