"""Walk-forward: optimize in sample, trade the winner out of sample, fold after fold.

``hlquant walkforward [overrides] [search space]`` splits the data into
folds (``walkforward`` in the config): out-of-sample windows back to back up
to the end of the data, each preceded by an in-sample window of fixed length
(``scheme: rolling``) or reaching back to the start of the data
(``anchored``). On each in-sample window it runs the configured sweep (the
search space given like a sweep's, e.g. ``strategy.fast=5,10,20`` or
``'strategy.slow=range(50,200,50)'``, with the configured sweeper and
launcher: ``hydra/sweeper=search`` for Optuna), takes the best job by
``sweep.objective`` in ``sweep.direction``, and runs those parameters on the
following out-of-sample window. The out-of-sample equity curves are chained
into one (each window compounding on the last), and the report shows
in-sample against out-of-sample metrics per fold.

Each out-of-sample window starts flat and with the features cold: agents
decide only once their features are warm inside the window (as a strategy
deployed at that moment would).
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from hlquant.backtest.runs import RunStatus, write_run_json
from hlquant.core.errors import ConfigError

SCHEMES = ("rolling", "anchored")
KEYS = ("folds", "scheme", "in_sample", "out_of_sample", "params")
GROUPS = ("mode", "data", "venue", "risk", "router", "live", "strategy")
SHOWN = ("total_return", "sharpe", "max_drawdown", "n_trades")


@dataclass(frozen=True)
class Fold:
    """One fold: in-sample [is_start, is_end) then out-of-sample [oos_start, oos_end), ms."""

    k: int
    is_start: int
    is_end: int
    oos_start: int
    oos_end: int


def duration_ms(v: Any, key: str) -> int:
    """"3d" / "12h" / "90min" / a number of ms -> ms."""
    try:
        text = str(v).strip()
        if text[-1:] == "d" and text[:-1].replace(".", "", 1).isdigit():
            text = text[:-1] + "D"  # pandas 3 deprecates the lower-case day unit
        ms = int(v) if isinstance(v, int | float) and not isinstance(v, bool) else int(
            pd.Timedelta(text).total_seconds() * 1000)
    except (ValueError, TypeError):
        raise ConfigError(f"walkforward.{key}={v!r}: expected a duration like 3d, 12h or 90min") from None
    if ms <= 0:
        raise ConfigError(f"walkforward.{key}={v!r}: must be > 0")
    return ms


def make_folds(start: int, end: int, folds: int, scheme: str, in_sample: Any,
               out_of_sample: Any = None) -> list[Fold]:
    """Folds over data spanning [start, end) ms (see the module doc)."""
    if scheme not in SCHEMES:
        raise ConfigError(f"walkforward.scheme={scheme!r}: expected one of {', '.join(SCHEMES)}")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 1:
        raise ConfigError(f"walkforward.folds={folds!r}: expected an int >= 1")
    is_len = duration_ms(in_sample, "in_sample")
    oos_len = (duration_ms(out_of_sample, "out_of_sample") if out_of_sample is not None
               else (end - start - is_len) // folds)
    need = is_len + folds * oos_len
    if oos_len <= 0 or need > end - start:
        days = (end - start) / 86_400_000
        raise ConfigError(f"walkforward: {folds} fold(s) of {oos_len / 86_400_000:.2f}d after "
                          f"{is_len / 86_400_000:.2f}d in sample need {need / 86_400_000:.2f}d of data; "
                          f"the data spans {days:.2f}d (walkforward.folds, in_sample, out_of_sample)")
    out = []
    for k in range(folds):
        o0 = end - (folds - k) * oos_len
        out.append(Fold(k, start if scheme == "anchored" else o0 - is_len, o0, o0, o0 + oos_len))
    return out


def split_search(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """(overrides, search space): sweep overrides (``a=1,2``, ``range(...)``...) are the
    search space of every in-sample sweep; the rest configures the walk-forward itself."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    base, space = [], []
    for a in args:
        try:
            o = parser.parse_overrides([a])[0]
        except Exception:
            base.append(a)
            continue
        if o.is_sweep_override():
            key = o.get_key_element().lstrip("+~")
            if key in GROUPS or "/" in key:
                raise ConfigError(f"walkforward searches values, not config groups: {a}")
            space.append(a)
        else:
            base.append(a)
    return base, space


def _typed(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return yaml.safe_load(v)
        except yaml.YAMLError:
            return v
    return v.item() if hasattr(v, "item") else v


def best_job(summary: pd.DataFrame, objective: str, direction: str) -> pd.Series:
    """The best row of a sweep's summary (NaN objectives last)."""
    if objective not in summary:
        raise ConfigError(f"sweep.objective={objective!r} is not a metric of the in-sample sweep")
    return summary.sort_values(objective, ascending=direction == "minimize", kind="stable",
                               na_position="last").iloc[0]


def run_walkforward(cfg: Any, args: Sequence[str], out_dir: str | Path) -> dict[str, Any]:
    """The walk-forward a config describes (``cfg``: the composed config, ``args``: the
    command's overrides including the search space); writes its files to ``out_dir``
    (``run.json``: running, then ok or failed with the error)."""
    import time

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    try:
        return _walkforward(cfg, args, out, started)
    except BaseException as e:
        write_run_json(out, {"status": RunStatus.FAILED, "kind": "walkforward", "started": started,
                             "finished": time.time(),
                             "error": {"type": type(e).__name__, "message": (str(e).splitlines() or [""])[0]}})
        raise


def _walkforward(cfg: Any, args: Sequence[str], out: Path, started: float) -> dict[str, Any]:
    import time

    from omegaconf import OmegaConf

    from hlquant.backtest.run import run_backtest
    from hlquant.config.build import load_market, to_dict

    c = to_dict(cfg)
    wf = dict(c.get("walkforward") or {})
    unknown = sorted(set(wf) - set(KEYS))
    if unknown:
        raise ConfigError(f"walkforward: unknown key(s) {unknown}; valid: {list(KEYS)}")
    base, space = split_search(args)
    space += [f"{k}={v}" for k, v in (wf.get("params") or {}).items()]
    if not space:
        raise ConfigError("walkforward needs a search space: sweep overrides such as strategy.fast=5,10,20 "
                          "(or walkforward.params)")
    base = [a for a in base if not a.startswith(("hydra.run.", "walkforward.", "data.start=", "data.end="))]
    objective, direction = str(c["sweep"]["objective"]), str(c["sweep"]["direction"])
    market = load_market(c.get("data", {}))
    t0, t1 = market.span()
    folds = make_folds(t0, t1 + 1, wf.get("folds", 3), str(wf.get("scheme", "rolling")),
                       wf.get("in_sample", "3d"), wf.get("out_of_sample"))
    write_run_json(out, {"status": RunStatus.RUNNING, "kind": "walkforward", "started": started, "config": c})
    rows, curves, arts = [], [], []
    for f in folds:
        is_dir = out / f"fold{f.k}" / "in_sample"
        cmd = [sys.executable, "-m", "hlquant.cli", "backtest", "-m", *base, *space,
               f"data.start={f.is_start}", f"data.end={f.is_end}", "progress=false",
               f"hydra.sweep.dir={is_dir}"]
        print(f"fold {f.k}: in sample {_day(f.is_start)} -> {_day(f.is_end)}: sweeping {' '.join(space)}",
              flush=True)
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            tail = (p.stderr.strip().splitlines() or [""])[-1]
            raise ConfigError(f"walkforward fold {f.k}: the in-sample sweep failed ({tail}); see {is_dir}")
        raw = pd.read_csv(_sweep_dir(is_dir) / "summary.csv", dtype=str)
        keys = [k for k in (o.split("=", 1)[0].lstrip("+~") for o in space) if k in raw]
        numeric = raw.copy()
        for col in raw.columns:
            if col not in (*keys, "node", "output_dir", "started"):
                numeric[col] = pd.to_numeric(raw[col], errors="coerce")
        best = best_job(numeric, objective, direction)
        params = {k: _typed(raw.loc[best.name, k]) for k in keys}
        oos_cfg = OmegaConf.create(c)
        for k, v in params.items():
            OmegaConf.update(oos_cfg, k, v, force_add=False)
        OmegaConf.update(oos_cfg, "data.start", f.oos_start)
        OmegaConf.update(oos_cfg, "data.end", f.oos_end)
        OmegaConf.update(oos_cfg, "progress", False)
        res = run_backtest(oos_cfg, out_dir=out / f"fold{f.k}" / "out_of_sample",
                           market=market.select(start=f.oos_start, end=f.oos_end))
        arts.append(res.artifacts)
        curves.append(res.artifacts.equity)
        row = {"fold": f.k, "is_start": _day(f.is_start), "is_end": _day(f.is_end),
               "oos_start": _day(f.oos_start), "oos_end": _day(f.oos_end), **params,
               f"is_{objective}": float(best[objective]), f"oos_{objective}": float(res.metrics[objective])}
        for m in SHOWN:
            if m != objective:
                row[f"is_{m}"] = float(best[m]) if m in best else math.nan
                row[f"oos_{m}"] = float(res.metrics[m])
        rows.append(row)
        print(f"fold {f.k}: best {params} ({objective} {float(best[objective]):.4g} in sample, "
              f"{float(res.metrics[objective]):.4g} out of sample)", flush=True)
    table = pd.DataFrame(rows)
    stitched = stitch(arts)
    from hlquant.report.metrics import build_report

    metrics = build_report(stitched)
    table.to_csv(out / "walkforward.csv", index=False)
    stitched.equity.to_frame("equity").to_parquet(out / "oos_equity.parquet")
    page = write_page(out / "walkforward.html", table, stitched, metrics, objective, direction, folds, space)
    write_run_json(out, {"status": RunStatus.OK, "kind": "walkforward", "started": started,
                         "finished": time.time(), "config": c, "search": space, "folds": rows,
                         "metrics": {k: float(v) for k, v in metrics.items()}})
    return {"table": table, "metrics": metrics, "equity": stitched.equity, "page": page}


def _sweep_dir(path: Path) -> Path:
    """The folder a sweep wrote (the claimed one, ``path`` or ``path-N``)."""
    if (path / "summary.csv").exists():
        return path
    cands = sorted(path.parent.glob(f"{path.name}-*"), key=lambda p: p.stat().st_mtime)
    for p in reversed(cands):
        if (p / "summary.csv").exists():
            return p
    raise ConfigError(f"no summary.csv in {path}")


def _day(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")


def stitch(arts: list[Any]) -> Any:
    """One RunArtifacts from the out-of-sample runs: each window's equity scaled to start
    where the previous ended (returns compound), the other tables concatenated (round trips
    per window: each window starts flat)."""
    from hlquant.report.metrics import RunArtifacts, trades

    init = float(arts[0].initial_cash)
    level = init
    eqs, poss, prices = [], [], []
    for a in arts:
        scale = level / float(a.initial_cash)
        eqs.append(a.equity * scale)
        poss.append(a.positions * scale)
        if a.prices is not None:
            prices.append(a.prices)
        level = float(eqs[-1].iloc[-1]) if len(eqs[-1]) else level
    return RunArtifacts(
        equity=pd.concat(eqs), positions=pd.concat(poss).fillna(0.0),
        fills=pd.concat([a.fills for a in arts], ignore_index=True),
        funding=pd.concat([a.funding for a in arts], ignore_index=True),
        initial_cash=init, name="walk-forward (out of sample)",
        prices=pd.concat(prices) if prices else None,
        orders=pd.concat([a.orders for a in arts if a.orders is not None], ignore_index=True)
        if any(a.orders is not None for a in arts) else None,
        trips=pd.concat([trades(a) for a in arts], ignore_index=True),
    )


def write_page(path: Path, table: pd.DataFrame, stitched: Any, metrics: pd.Series, objective: str,
               direction: str, folds: list[Fold], space: list[str]) -> Path:
    """walkforward.html: the chained out-of-sample equity with the fold boundaries, in-sample
    against out-of-sample objective per fold, the fold table and the chained metrics."""
    import html

    import plotly.graph_objects as go

    from hlquant.report.html import Page, downsample, time_ms
    from hlquant.report.html import table as html_table
    from hlquant.report.metrics import buy_and_hold

    page = Page()
    eq = stitched.equity
    x = time_ms(eq.index)
    i = downsample(x, eq.to_numpy())
    fig = go.Figure(go.Scatter(x=x[i], y=eq.to_numpy()[i], mode="lines", name="out of sample (chained)",
                               line={"color": "#1f77b4", "width": 1.3}))
    bench = buy_and_hold(stitched)
    if len(bench):
        j = downsample(x, bench.to_numpy())
        fig.add_trace(go.Scatter(x=x[j], y=bench.to_numpy()[j], mode="lines", name="buy & hold",
                                 line={"color": "#9a9a9a", "dash": "dot", "width": 1}))
    for f in folds:
        fig.add_vline(x=f.oos_start, line={"color": "#bbbbbb", "width": 1, "dash": "dash"})
    fig.update_xaxes(type="date")
    fig.update_layout(title="Out-of-sample equity, folds chained", height=420, hovermode="x unified",
                      legend={"orientation": "h", "y": -0.15})
    bars = go.Figure([go.Bar(name="in sample", x=table["fold"], y=table[f"is_{objective}"]),
                      go.Bar(name="out of sample", x=table["fold"], y=table[f"oos_{objective}"])])
    bars.update_layout(title=f"{objective} per fold ({direction})", barmode="group", height=340,
                       xaxis_title="fold")
    shown = {k: float(v) for k, v in metrics.items() if k in ("total_return", "annual_return", "sharpe",
                                                             "sortino", "max_drawdown", "calmar", "n_trades",
                                                             "hit_rate", "profit_factor", "fees", "funding")}
    body = (f"<h1>Walk-forward</h1><div class='sub'>search: {html.escape(' '.join(space))}; "
            f"objective {html.escape(objective)} ({html.escape(direction)}); {len(folds)} folds</div>"
            f"{page.figure(fig)}{page.figure(bars)}<h2>Folds</h2>{html_table(table, {'fold': 'd'})}"
            f"<h2>Out of sample, chained</h2>{html_table([{'metric': k, 'value': v} for k, v in shown.items()], {'value': ',.4g'})}")
    return page.write(path, "walk-forward", body)
