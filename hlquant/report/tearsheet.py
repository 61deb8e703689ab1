"""HTML tearsheet: one page a person would rather look at than read.

Interactive plotly charts (equity, drawdown, positions, daily returns,
monthly returns), the metrics table, the PnL decomposition (trading, fees,
funding kept apart), a per-symbol breakdown and the trade list. The plotly
bundle is written once beside the page (``plotly.min.js``) so the page works
offline and a sweep's hundred pages don't carry a hundred copies.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from hlquant.report.metrics import RunArtifacts, build_report, drawdown

MAX_TRADE_ROWS = 500

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin-bottom:2px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
.sub{color:#666;font-size:13px} table{border-collapse:collapse;font-size:13px}
td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right} th{background:#f6f6f6}
td:first-child,th:first-child{text-align:left} .grid{display:flex;gap:40px;flex-wrap:wrap}
.pos{color:#127a2e} .neg{color:#b3261e}
"""

_PCT = {"total_return", "annual_return", "annual_volatility", "max_drawdown", "hit_rate", "exposure"}


def _fmt(key: str, v: float) -> str:
    if key in _PCT:
        return f"{v:+.2%}" if key in ("total_return", "annual_return") else f"{v:.2%}"
    if key.startswith("n_"):
        return f"{int(v):,}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:,.3f}"


def _signed(v: float, text: str) -> str:
    cls = "pos" if v > 0 else "neg" if v < 0 else ""
    return f'<span class="{cls}">{text}</span>'


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Compounded return per calendar month as a year x month table."""
    eq = equity.copy()
    if eq.index.tz is not None:
        eq.index = eq.index.tz_convert(None)
    month_end = eq.resample("ME").last().dropna()
    prev = pd.concat([pd.Series([eq.iloc[0]], index=[eq.index[0]]), month_end.iloc[:-1]])
    r = pd.Series(month_end.to_numpy() / prev.to_numpy() - 1.0, index=month_end.index)
    table = pd.DataFrame({"year": r.index.year, "month": r.index.month, "ret": r.to_numpy()})
    return table.pivot(index="year", columns="month", values="ret")


def daily_returns(equity: pd.Series) -> pd.Series:
    eq = equity.copy()
    if eq.index.tz is not None:
        eq.index = eq.index.tz_convert(None)
    close = eq.resample("D").last().dropna()
    prev = pd.concat([pd.Series([eq.iloc[0]], index=[close.index[0]]), close.iloc[:-1]])
    return pd.Series(close.to_numpy() / prev.to_numpy() - 1.0, index=close.index)


def per_symbol(art: RunArtifacts) -> pd.DataFrame:
    f, fu = art.fills, art.funding
    syms = sorted(set(art.positions.columns) | set(f["symbol"]) if len(f) else set(art.positions.columns))
    rows = []
    for s in syms:
        fs = f[f["symbol"] == s] if len(f) else f
        fus = fu[fu["symbol"] == s] if len(fu) else fu
        rows.append({
            "symbol": s,
            "fills": len(fs),
            "traded_notional": float((fs["px"] * fs["sz"]).abs().sum()) if len(fs) else 0.0,
            "realized": float(fs["closed_pnl"].sum()) if len(fs) else 0.0,
            "fees": float(fs["fee"].sum()) if len(fs) else 0.0,
            "funding": float(fus["amount"].sum()) if len(fus) else 0.0,
            "final_position": float(art.positions[s].iloc[-1]) if s in art.positions and len(art.positions) else 0.0,
        })
    return pd.DataFrame(rows)


def _figure(art: RunArtifacts) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    eq = art.equity
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        row_heights=[0.5, 0.2, 0.3],
                        subplot_titles=("Equity (USDC)", "Drawdown", "Position notional (USDC)"))
    fig.add_trace(go.Scatter(x=eq.index, y=eq.to_numpy(), name="equity", line={"width": 1.3}), 1, 1)
    dd = drawdown(eq)
    fig.add_trace(go.Scatter(x=dd.index, y=dd.to_numpy(), name="drawdown", fill="tozeroy",
                             line={"color": "#d62728", "width": 0.8}), 2, 1)
    for col in art.positions.columns:
        fig.add_trace(go.Scatter(x=art.positions.index, y=art.positions[col].to_numpy(),
                                 name=str(col), line={"width": 1}), 3, 1)
    fig.update_yaxes(tickformat=".1%", row=2, col=1)
    fig.update_layout(height=720, margin={"l": 60, "r": 20, "t": 40, "b": 30}, hovermode="x unified",
                      legend={"orientation": "h", "y": -0.05})
    return fig.to_html(full_html=False, include_plotlyjs="directory")


def _returns_figures(art: RunArtifacts) -> str:
    import plotly.graph_objects as go

    d = daily_returns(art.equity)
    bar = go.Figure(go.Bar(x=d.index, y=d.to_numpy(),
                           marker_color=np.where(d.to_numpy() >= 0, "#2ca02c", "#d62728")))
    bar.update_layout(title="Daily returns", height=280, yaxis_tickformat=".2%",
                      margin={"l": 60, "r": 20, "t": 40, "b": 30})
    m = monthly_returns(art.equity)
    heat = go.Figure(go.Heatmap(
        z=m.to_numpy(), x=[pd.Timestamp(2000, int(c), 1).strftime("%b") for c in m.columns],
        y=[str(y) for y in m.index], colorscale="RdYlGn", zmid=0,
        text=[[("" if pd.isna(v) else f"{v:+.2%}") for v in row] for row in m.to_numpy()],
        texttemplate="%{text}", showscale=False))
    heat.update_layout(title="Monthly returns", height=120 + 40 * len(m),
                       margin={"l": 60, "r": 20, "t": 40, "b": 30})
    return bar.to_html(full_html=False, include_plotlyjs=False) + heat.to_html(
        full_html=False, include_plotlyjs=False)


def _table(df: pd.DataFrame, fmt: dict[str, str] | None = None) -> str:
    fmt = fmt or {}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for c, v in zip(df.columns, row, strict=True):
            if isinstance(v, float):
                txt = format(v, fmt.get(c, ",.4f"))
                cells.append(f"<td>{_signed(v, txt) if c in ('realized', 'closed_pnl', 'funding') else txt}</td>")
            else:
                cells.append(f"<td>{html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _ensure_plotly_js(directory: Path) -> None:
    js = directory / "plotly.min.js"
    if not js.exists():
        from plotly.offline import get_plotlyjs

        tmp = js.with_suffix(".tmp")
        tmp.write_text(get_plotlyjs(), encoding="utf-8")
        tmp.replace(js)


def write_tearsheet(art: RunArtifacts, path: str | Path, metrics: pd.Series | None = None) -> Path:
    """Write the HTML tearsheet of one run; returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _ensure_plotly_js(path.parent)
    m = metrics if metrics is not None else build_report(art)
    params = ", ".join(f"{k}={v}" for k, v in art.params.items()) or "defaults"
    start, end = (art.equity.index[0], art.equity.index[-1]) if len(art.equity) else ("", "")
    metric_rows = "".join(
        f"<tr><td>{k}</td><td>{_fmt(k, float(v))}</td></tr>" for k, v in m.items())
    parts = [("trading PnL", m["trading_pnl"]), ("fees", -m["fees"]), ("funding", m["funding"])]
    decomposition = "<table><tr><th>component</th><th>USDC</th></tr>" + "".join(
        f"<tr><td>{name}</td><td>{_signed(v, f'{v:,.2f}')}</td></tr>" for name, v in parts
    ) + f"<tr><th>net</th><th>{_signed(m['net_pnl'], format(m['net_pnl'], ',.2f'))}</th></tr></table>"
    fills = art.fills.copy()
    n_fills = len(fills)
    if len(fills):
        fills["side"] = np.where(fills["side"].to_numpy() > 0, "buy", "sell")
        fills["ts"] = fills["ts"].astype(str)
    trade_note = (f"showing the last {MAX_TRADE_ROWS} of {n_fills:,} fills (all in fills.parquet)"
                  if n_fills > MAX_TRADE_ROWS else f"{n_fills:,} fills")
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>{html.escape(art.name)} tearsheet</title><style>{_CSS}</style></head><body>
<h1>{html.escape(art.name)}</h1>
<div class="sub">{html.escape(params)} &middot; {start} &rarr; {end} &middot; initial {art.initial_cash:,.0f} USDC</div>
<div class="grid"><div><h2>Metrics</h2><table>{metric_rows}</table></div>
<div><h2>PnL decomposition</h2>{decomposition}<h2>Per symbol</h2>{_table(per_symbol(art), {"fills": "d"})}</div></div>
<h2>Equity, drawdown, exposure</h2>{_figure(art)}
<h2>Returns</h2>{_returns_figures(art)}
<h2>Trades</h2><div class="sub">{trade_note}</div>
{_table(fills.tail(MAX_TRADE_ROWS), {"px": ",.5g", "sz": ",.5g", "fee": ",.4f", "closed_pnl": ",.2f"})}
</body></html>"""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
