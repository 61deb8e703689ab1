"""Gather a Hydra sweep into one table, a heatmap and a comparison page.

Each job directory of a multirun holds ``metrics.json`` (written by
``write_report``) and ``.hydra/overrides.yaml`` (what Hydra varied). The
summary is one row per job: the swept parameters, then the metrics. With two
numeric swept parameters the Sharpe heatmap shows whether a good cell sits on
a plateau (robust) or a spike (overfit).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd
import yaml

HEATMAP_METRIC = "sharpe"


def _overrides(job_dir: Path) -> dict[str, object]:
    f = job_dir / ".hydra" / "overrides.yaml"
    if not f.exists():
        return {}
    out: dict[str, object] = {}
    for item in yaml.safe_load(f.read_text()) or []:
        key, _, val = str(item).partition("=")
        key = key.lstrip("+~")
        try:
            out[key] = yaml.safe_load(val)
        except yaml.YAMLError:
            out[key] = val
    return out


def collect_sweep(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per finished job: ``job``, swept parameters, then every metric."""
    sweep_dir = Path(sweep_dir)
    rows = []
    keys: list[str] = []
    for mf in sorted(sweep_dir.glob("*/metrics.json")):
        job = mf.parent
        data = json.loads(mf.read_text())
        row: dict[str, object] = {"job": job.name}
        ov = _overrides(job)
        keys += [k for k in ov if k not in keys]
        row.update(ov)
        row.update(data.get("metrics", {}))
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    try:
        df = df.sort_values("job", key=lambda s: s.astype(int))
    except ValueError:
        df = df.sort_values("job")
    df = df.reset_index(drop=True)
    df.attrs["params"] = keys
    return df


def param_columns(df: pd.DataFrame) -> list[str]:
    """The swept parameters: override keys (recorded by ``collect_sweep``) that vary across jobs."""
    keys = df.attrs.get("params")
    if keys is None:
        keys = [c for c in df.columns if c != "job" and not pd.api.types.is_float_dtype(df[c])]
    return [c for c in keys if c in df and df[c].nunique(dropna=False) > 1]


def write_sweep_report(df: pd.DataFrame, sweep_dir: str | Path,
                       metric: str = HEATMAP_METRIC) -> dict[str, Path]:
    """summary.csv, summary.html (table, ranking, heatmap) and heatmap.png when 2 params vary."""
    sweep_dir = Path(sweep_dir)
    files: dict[str, Path] = {}
    files["summary_csv"] = sweep_dir / "summary.csv"
    df.to_csv(files["summary_csv"], index=False)
    params = param_columns(df)
    heat_html = ""
    if len(params) == 2 and metric in df:
        piv = df.pivot_table(index=params[0], columns=params[1], values=metric, aggfunc="mean")
        files["heatmap_png"] = _heatmap_png(piv, metric, sweep_dir / "heatmap.png")
        heat_html = _heatmap_html(piv, metric)
    files["summary_html"] = _summary_html(df, params, metric, heat_html, sweep_dir / "summary.html")
    return files


def _heatmap_png(piv: pd.DataFrame, metric: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.4 * len(piv.columns) + 3, 1.0 * len(piv.index) + 2))
    vmax = float(abs(piv.to_numpy()).max()) or 1.0
    im = ax.imshow(piv.to_numpy(), cmap="RdYlGn", vmin=-vmax, vmax=vmax, aspect="auto")
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


def _heatmap_html(piv: pd.DataFrame, metric: str) -> str:
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(z=piv.to_numpy(), x=[str(c) for c in piv.columns],
                               y=[str(i) for i in piv.index], colorscale="RdYlGn", zmid=0,
                               texttemplate="%{z:.2f}"))
    fig.update_layout(title=f"{metric}", xaxis_title=str(piv.columns.name),
                      yaxis_title=str(piv.index.name), height=420)
    return fig.to_html(full_html=False, include_plotlyjs="directory")


def _summary_html(df: pd.DataFrame, params: list[str], metric: str, heat: str, path: Path) -> Path:
    from hlquant.report.tearsheet import _ensure_plotly_js

    _ensure_plotly_js(path.parent)
    show = ["job", *params] + [c for c in ("total_return", "sharpe", "sortino", "max_drawdown",
                                           "fees", "funding", "turnover", "hit_rate", "n_fills")
                               if c in df]
    ranked = df.sort_values(metric, ascending=False) if metric in df else df
    head = "".join(f"<th>{html.escape(c)}</th>" for c in show)
    rows = []
    for _, r in ranked[show].iterrows():
        job = str(r["job"])
        cells = [f'<td><a href="{html.escape(job)}/report.html">{html.escape(job)}</a></td>']
        for c in show[1:]:
            v = r[c]
            cells.append(f"<td>{v:,.4g}</td>" if isinstance(v, float) else f"<td>{html.escape(str(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>sweep summary</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px}}table{{border-collapse:collapse;font-size:13px}}
td,th{{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}}th{{background:#f6f6f6}}</style>
</head><body><h1>Sweep: {len(df)} runs, ranked by {html.escape(metric)}</h1>
<table><tr>{head}</tr>{''.join(rows)}</table>{heat}</body></html>"""
    path.write_text(page, encoding="utf-8")
    return path
