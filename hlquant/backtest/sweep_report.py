"""Gather a Hydra sweep into one table, a heatmap and a comparison page.

The summary is built from the values the jobs returned (``JobResult``, see
``sweep_job``), never from files in the job directories: on a cluster those
stay on the node that ran the job. One row per job: ``job``, the swept
parameters (from the job's overrides), every metric, then ``node`` and
``output_dir`` (where that job's files are), ``started`` and ``elapsed_s``. With two numeric swept
parameters the heatmap of the objective shows whether a good cell sits on a
plateau (robust) or a spike (overfit).
"""

from __future__ import annotations

import html
import socket
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import yaml

from hlquant.backtest.sweep_job import JobResult

HEATMAP_METRIC = "sharpe"
HEADLINE = ("total_return", "sharpe", "sortino", "max_drawdown", "fees", "funding", "turnover",
            "hit_rate", "n_fills")
WHERE = ("node", "output_dir", "started", "elapsed_s")   # where and when each job ran


def parse_overrides(overrides: Sequence[str]) -> dict[str, object]:
    """``["strategy.fast=5", "+a.b=x", "s=[BTC]"]`` -> ``{"strategy.fast": 5, "a.b": "x",
    "s": "[BTC]"}``: scalars typed as YAML reads them, lists and maps kept as written."""
    out: dict[str, object] = {}
    for item in overrides:
        key, _, val = str(item).partition("=")
        key = key.lstrip("+~")
        try:
            typed = yaml.safe_load(val)
        except yaml.YAMLError:
            typed = val
        out[key] = typed if typed is None or isinstance(typed, str | int | float | bool) else val
    return out


def results_frame(results: Sequence[JobResult]) -> pd.DataFrame:
    """One row per returned job, by job number: ``job``, swept parameters, metrics, node, path."""
    rows = []
    keys: list[str] = []
    for r in sorted(results, key=lambda r: r.num):
        ov = parse_overrides(r.overrides)
        keys += [k for k in ov if k not in keys]
        rows.append({"job": r.num, **ov, **r.metrics, "node": r.node, "output_dir": r.output_dir,
                     "started": pd.Timestamp(r.started, unit="s", tz="UTC").isoformat(),
                     "elapsed_s": r.elapsed_s})
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    df = df[[c for c in df.columns if c not in WHERE] + list(WHERE)]
    df.attrs["params"] = keys
    return df


def param_columns(df: pd.DataFrame) -> list[str]:
    """The swept parameters: override keys (recorded by ``results_frame``) that vary across jobs."""
    keys = df.attrs.get("params")
    if keys is None:
        keys = [c for c in df.columns
                if c not in ("job", *WHERE) and not pd.api.types.is_float_dtype(df[c])]
    return [c for c in keys if c in df and df[c].nunique(dropna=False) > 1]


def ranked(df: pd.DataFrame, metric: str, direction: str = "maximize") -> pd.DataFrame:
    """Best first by ``metric`` in ``direction``; NaN last; ties keep job order."""
    if metric not in df:
        return df
    return df.sort_values(metric, ascending=direction == "minimize", kind="stable",
                          na_position="last")


def ranked_table(df: pd.DataFrame, metric: str, direction: str = "maximize") -> str:
    """The table a sweep prints at its end: rank, job, swept parameters, objective, headline
    metrics, and the node of each job when some ran on another machine."""
    show = ["job", *param_columns(df), metric, *[c for c in HEADLINE if c in df and c != metric]]
    if "node" in df and (df["node"] != socket.gethostname()).any():
        show.append("node")
    out = ranked(df, metric, direction)[[c for c in show if c in df]].copy()
    out.insert(0, "rank", range(1, len(out) + 1))
    return out.to_string(index=False, float_format=lambda v: f"{v:,.6g}")


def local_job_dir(row: pd.Series) -> Path | None:
    """The job's directory when it is on this machine (None: it stays on ``row['node']``)."""
    if row.get("node") != socket.gethostname():
        return None
    p = Path(str(row.get("output_dir")))
    return p if p.is_dir() else None


def write_sweep_report(df: pd.DataFrame, sweep_dir: str | Path, metric: str = HEATMAP_METRIC,
                       direction: str = "maximize") -> dict[str, Path]:
    """summary.csv, summary.html (table ranked by ``metric`` in ``direction``, heatmap) and
    heatmap.png when 2 params vary."""
    sweep_dir = Path(sweep_dir)
    files: dict[str, Path] = {}
    files["summary_csv"] = sweep_dir / "summary.csv"
    df.to_csv(files["summary_csv"], index=False)
    from hlquant.report.html import Page

    params = param_columns(df)
    page = Page()
    heat_html = ""
    if len(params) == 2 and metric in df:
        piv = df.pivot_table(index=params[0], columns=params[1], values=metric, aggfunc="mean")
        files["heatmap_png"] = _heatmap_png(piv, metric, direction, sweep_dir / "heatmap.png")
        heat_html = page.figure(_heatmap_figure(piv, metric, direction))
    files["summary_html"] = _summary_html(page, df, params, metric, direction, heat_html,
                                          sweep_dir / "summary.html")
    return files


def _heatmap_png(piv: pd.DataFrame, metric: str, direction: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.4 * len(piv.columns) + 3, 1.0 * len(piv.index) + 2))
    vmax = float(abs(piv.to_numpy()).max()) or 1.0
    cmap = "RdYlGn" if direction == "maximize" else "RdYlGn_r"   # green is good either way
    im = ax.imshow(piv.to_numpy(), cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(piv.columns)), [str(c) for c in piv.columns])
    ax.set_yticks(range(len(piv.index)), [str(i) for i in piv.index])
    ax.set_xlabel(str(piv.columns.name))
    ax.set_ylabel(str(piv.index.name))
    for i in range(len(piv.index)):
        for j in range(len(piv.columns)):
            ax.text(j, i, f"{piv.iat[i, j]:.2f}", ha="center", va="center", fontsize=9)
    fig.colorbar(im, ax=ax, label=metric)
    ax.set_title(f"{metric} by {piv.index.name} x {piv.columns.name}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _heatmap_figure(piv: pd.DataFrame, metric: str, direction: str):
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(z=piv.to_numpy(), x=[str(c) for c in piv.columns],
                               y=[str(i) for i in piv.index], colorscale="RdYlGn", zmid=0,
                               reversescale=direction == "minimize",
                               texttemplate="%{z:.2f}"))
    fig.update_layout(title=f"{metric}", xaxis_title=str(piv.columns.name),
                      yaxis_title=str(piv.index.name), height=420)
    return fig


def _summary_html(page, df: pd.DataFrame, params: list[str], metric: str, direction: str, heat: str,
                  path: Path) -> Path:
    """The ranked table and the heatmap, one self-contained page (``hlquant.report.html``)."""
    show = ["job", *params] + [c for c in (metric, *HEADLINE) if c in df]
    show = list(dict.fromkeys(show))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in [*show, "files"])
    rows = []
    for _, r in ranked(df, metric, direction).iterrows():
        cells = [f"<td>{html.escape(str(r['job']))}</td>"]
        for c in show[1:]:
            v = r[c]
            cells.append(f"<td>{v:,.4g}</td>" if isinstance(v, float) else f"<td>{html.escape(str(v))}</td>")
        local = local_job_dir(r)
        if local is not None and (local / "report.html").exists():
            href = (local / "report.html").resolve()
            try:
                href = href.relative_to(path.parent.resolve())
            except ValueError:
                href = href.as_uri()
            cells.append(f'<td><a href="{html.escape(str(href))}">report</a></td>')
        else:
            where = f"{r.get('node')}:{r.get('output_dir')}"
            cells.append(f'<td title="on another machine">{html.escape(where)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    body = (f"<h1>Sweep: {len(df)} runs, ranked by {html.escape(metric)} ({html.escape(direction)})</h1>"
            f"<table><tr>{head}</tr>{''.join(rows)}</table>{heat}")
    return page.write(path, "sweep summary", body)
