"""HTML tearsheet: one page a person would rather look at than read.

Warnings first (a run that mostly skipped its decisions, a short sample),
then the metrics with the basis of their annualization, the PnL
decomposition (trading, fees, funding kept apart), trade statistics over
round trips, equity beside a buy-and-hold benchmark, drawdown, exposure per
symbol as colored strips (long green, short red: readable where a line of
+-10k flips would be a solid band), one price chart per symbol with entries,
exits and stops marked, daily and monthly returns, per-symbol and per-agent
breakdowns, and the round trips. The page is self-contained and its charts
are downsampled for display (``hlquant.report.html``).
"""

from __future__ import annotations

import html as _html
from pathlib import Path

import numpy as np
import pandas as pd

from hlquant.report.html import Page, downsample, table, time_ms
from hlquant.report.metrics import (
    RunArtifacts,
    WarningCode,
    basis,
    build_report,
    buy_and_hold,
    drawdown,
    trades,
)
from hlquant.report.trades import ExitReason, breakdown

MAX_TRADE_ROWS = 500
MAX_STRIP_COLUMNS = 1_500
"""Time buckets of the exposure strips."""

_PCT = {"total_return", "annual_return", "annual_volatility", "max_drawdown", "hit_rate", "exposure",
        "benchmark_return"}
_EXTRAPOLATED = ("annual_return", "calmar")
_MARKERS = {  # exit reason -> (symbol, color)
    ExitReason.SIGNAL: ("x", "#333333"), ExitReason.STOP: ("x", "#d62728"),
    ExitReason.TAKE_PROFIT: ("star", "#2ca02c"), ExitReason.LIQUIDATION: ("x-thin", "#000000"),
    ExitReason.RISK: ("square", "#ff7f0e"), ExitReason.OPEN: ("circle-open", "#7f7f7f"),
}


def _fmt(key: str, v: float) -> str:
    if v != v:
        return "n/a"
    if np.isinf(v):
        return "∞"
    if key in _PCT:
        return f"{v:+.2%}" if key in ("total_return", "annual_return", "benchmark_return") else f"{v:.2%}"
    if key.startswith(("n_", "max_consecutive")):
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
    tbl = pd.DataFrame({"year": r.index.year, "month": r.index.month, "ret": r.to_numpy()})
    return tbl.pivot(index="year", columns="month", values="ret")


def daily_returns(equity: pd.Series) -> pd.Series:
    eq = equity.copy()
    if eq.index.tz is not None:
        eq.index = eq.index.tz_convert(None)
    close = eq.resample("D").last().dropna()
    prev = pd.concat([pd.Series([eq.iloc[0]], index=[close.index[0]]), close.iloc[:-1]])
    return pd.Series(close.to_numpy() / prev.to_numpy() - 1.0, index=close.index)


def per_symbol(art: RunArtifacts) -> pd.DataFrame:
    """Fills, traded notional, realized PnL, fees, funding and final position per symbol."""
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


def _line(go, x_ms: np.ndarray, y: np.ndarray, n: int, **kw):
    i = downsample(x_ms, y, n)
    return go.Scatter(x=x_ms[i], y=np.asarray(y)[i], mode="lines", **kw)


def _equity_figure(art: RunArtifacts):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    eq = art.equity
    x = time_ms(eq.index)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.05, row_heights=[0.7, 0.3],
                        subplot_titles=("Equity (USDC) and buy-and-hold", "Drawdown"))
    fig.add_trace(_line(go, x, eq.to_numpy(), 2000, name="strategy", line={"width": 1.4, "color": "#1f77b4"}),
                  1, 1)
    bench = buy_and_hold(art)
    if len(bench):
        fig.add_trace(_line(go, x, bench.to_numpy(), 2000, name="buy & hold (equal weight)",
                            line={"width": 1, "color": "#9a9a9a", "dash": "dot"}), 1, 1)
    fig.add_hline(y=art.initial_cash, line={"color": "#cccccc", "width": 0.6}, row=1, col=1)
    dd = drawdown(eq).to_numpy()
    fig.add_trace(_line(go, x, dd, 2000, name="drawdown", fill="tozeroy",
                        line={"color": "#d62728", "width": 0.8}), 2, 1)
    fig.update_xaxes(type="date")
    fig.update_yaxes(tickformat=".1%", row=2, col=1)
    fig.update_layout(height=560, margin={"l": 60, "r": 20, "t": 40, "b": 30}, hovermode="x unified",
                      legend={"orientation": "h", "y": 1.08})
    return fig


def _exposure_figure(art: RunArtifacts):
    """Per symbol, position notional / equity as a colored strip; gross and net below."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    pos, eq = art.positions, art.equity
    if not len(pos.columns) or not len(eq):
        return None
    frac = pos.div(eq.where(eq > 0), axis=0).fillna(0.0)
    n = len(frac)
    buckets = max(1, -(-n // MAX_STRIP_COLUMNS))
    grp = np.arange(n) // buckets
    strips = frac.groupby(grp).mean()
    x = time_ms(frac.index)[::buckets][: len(strips)]
    gross = frac.abs().sum(axis=1).to_numpy()
    net = frac.sum(axis=1).to_numpy()
    xa = time_ms(frac.index)
    zmax = float(np.nanmax(np.abs(strips.to_numpy()))) or 1.0
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.55, 0.45],
                        subplot_titles=("Position / equity per symbol (green long, red short; "
                                        f"mean over {buckets} bar{'s' if buckets > 1 else ''} per column)",
                                        "Gross and net exposure (x equity)"))
    fig.add_trace(go.Heatmap(z=strips.to_numpy().T, x=x, y=[str(c) for c in frac.columns],
                             colorscale="RdYlGn", zmid=0, zmin=-zmax, zmax=zmax,
                             colorbar={"title": "x equity", "len": 0.5, "y": 0.78}), 1, 1)
    fig.add_trace(_line(go, xa, gross, 1500, name="gross", line={"width": 1, "color": "#555555"}), 2, 1)
    fig.add_trace(_line(go, xa, net, 1500, name="net", line={"width": 1, "color": "#1f77b4"}), 2, 1)
    fig.update_xaxes(type="date")
    fig.update_layout(height=160 + 30 * len(frac.columns) + 200, margin={"l": 60, "r": 20, "t": 40, "b": 30},
                      legend={"orientation": "h", "y": -0.12})
    return fig


def _price_figure(art: RunArtifacts, sym: str, trips: pd.DataFrame, points: int, markers: int):
    """Close of one symbol with its round trips: entries (triangles), exits by reason."""
    import plotly.graph_objects as go

    px = art.prices[sym].dropna() if art.prices is not None and sym in art.prices else pd.Series(dtype=float)
    if not len(px):
        return None, ""
    x = time_ms(px.index)
    fig = go.Figure(_line(go, x, px.to_numpy(), points, name=f"{sym} close",
                          line={"width": 1, "color": "#4c72b0"}))
    t = trips[trips["symbol"] == sym] if len(trips) else trips
    note = ""
    if len(t) > markers:
        note = f"markers for the last {markers:,} of {len(t):,} round trips (all in trades.parquet)"
        t = t.tail(markers)
    for direction, sym_, color in (("long", "triangle-up", "#2ca02c"), ("short", "triangle-down", "#d62728")):
        e = t[t["direction"] == direction]
        if len(e):
            fig.add_trace(go.Scatter(
                x=time_ms(e["entry_time"]), y=e["entry_px"].to_numpy(), mode="markers",
                name=f"{direction} entry", marker={"symbol": sym_, "color": color, "size": 8},
                customdata=np.stack([e["size"].to_numpy(), e["agent"].to_numpy()], axis=1),
                hovertemplate="%{y:,.6g} size %{customdata[0]:.6g} (%{customdata[1]})<extra>entry</extra>"))
    for why, (mk, color) in _MARKERS.items():
        e = t[t["exit_reason"] == str(why)]
        if len(e):
            fig.add_trace(go.Scatter(
                x=time_ms(e["exit_time"]), y=e["exit_px"].to_numpy(), mode="markers", name=f"exit: {why}",
                marker={"symbol": mk, "color": color, "size": 7 if why is ExitReason.SIGNAL else 9},
                customdata=e["net_pnl"].to_numpy(),
                hovertemplate="%{y:,.6g} net %{customdata:+,.2f}<extra>" + str(why) + "</extra>"))
    fig.update_xaxes(type="date")
    fig.update_layout(title=f"{sym}: price, entries and exits", height=360, hovermode="closest",
                      margin={"l": 60, "r": 20, "t": 40, "b": 30}, legend={"orientation": "h", "y": -0.15})
    return fig, note


def _returns_figures(art: RunArtifacts):
    import plotly.graph_objects as go

    d = daily_returns(art.equity)
    bar = go.Figure(go.Bar(x=time_ms(d.index), y=d.to_numpy(),
                           marker_color=np.where(d.to_numpy() >= 0, "#2ca02c", "#d62728")))
    bar.update_xaxes(type="date")
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
    return bar, heat


def write_tearsheet(art: RunArtifacts, path: str | Path, metrics: pd.Series | None = None,
                    trips: pd.DataFrame | None = None) -> Path:
    """Write the HTML tearsheet of one run; returns its path."""
    path = Path(path)
    m = metrics if metrics is not None else build_report(art)
    trips = trips if trips is not None else trades(art)
    b = basis(art)
    page = Page()
    params = ", ".join(f"{k}={v}" for k, v in art.params.items()) or "defaults"
    start, end = (art.equity.index[0], art.equity.index[-1]) if len(art.equity) else ("", "")
    short = any(w.code is WarningCode.SHORT_RUN for w in art.warnings)
    warn = ""
    loud = [w for w in art.warnings if w.code is not WarningCode.SHORT_RUN]
    if loud:
        warn = '<div class="warn"><b>Read this first</b><ul>' + "".join(
            f"<li>{_html.escape(w.message)}</li>" for w in loud) + "</ul></div>"
    metric_rows = "".join(
        f"<tr><td>{k}</td><td>{_fmt(k, float(v))}"
        + ('<span class="note" title="extrapolated from less than a year"> *</span>'
           if short and k in _EXTRAPOLATED else "") + "</td></tr>"
        for k, v in m.items())
    note = (f'<div class="note">* extrapolated: {_html.escape(next(w.message for w in art.warnings if w.code is WarningCode.SHORT_RUN))}</div>'
            if short else "")
    parts = [("trading PnL", m["trading_pnl"]), ("fees", -m["fees"]), ("funding", m["funding"])]
    decomposition = "<table><tr><th>component</th><th>USDC</th></tr>" + "".join(
        f"<tr><td>{name}</td><td>{_signed(v, f'{v:,.2f}')}</td></tr>" for name, v in parts
    ) + f"<tr><th>net</th><th>{_signed(m['net_pnl'], format(m['net_pnl'], ',.2f'))}</th></tr></table>"
    reasons = trips["exit_reason"].value_counts() if len(trips) else pd.Series(dtype=int)
    reason_table = table([{"exit reason": k, "round trips": int(v)} for k, v in reasons.items()]) if len(
        reasons) else "<div class='sub'>no round trips</div>"
    syms = list(art.positions.columns)
    points = max(300, 6_000 // max(1, len(syms)))
    markers = max(200, 4_000 // max(1, len(syms)))
    charts = []
    for s in syms:
        fig, mnote = _price_figure(art, s, trips, points, markers)
        if fig is not None:
            charts.append(page.figure(fig) + (f'<div class="sub">{mnote}</div>' if mnote else ""))
    exposure = _exposure_figure(art)
    bar, heat = _returns_figures(art)
    shown = trips.tail(MAX_TRADE_ROWS).copy() if len(trips) else trips
    trade_note = (f"showing the last {MAX_TRADE_ROWS} of {len(trips):,} round trips (all in trades.parquet)"
                  if len(trips) > MAX_TRADE_ROWS else f"{len(trips):,} round trips")
    if len(shown):
        for c in ("entry_time", "exit_time"):
            shown[c] = pd.DatetimeIndex(shown[c]).strftime("%Y-%m-%d %H:%M")
    money = {"pnl": ",.2f", "fees": ",.2f", "funding": ",.2f", "net_pnl": ",.2f", "expectancy": ",.2f",
             "win_rate": ".1%", "profit_factor": ",.2f", "avg_minutes": ",.1f"}
    body = f"""<h1>{_html.escape(art.name)}</h1>
<div class="sub">{_html.escape(params)} &middot; {start} &rarr; {end} &middot; initial {art.initial_cash:,.0f} USDC</div>
<div class="sub">{_html.escape(b["annualized"])}</div>
{warn}
<div class="grid"><div><h2>Metrics</h2><table>{metric_rows}</table>{note}</div>
<div><h2>PnL decomposition</h2>{decomposition}<h2>Exits</h2>{reason_table}
<h2>Per symbol</h2>{table(per_symbol(art), {"fills": "d", "traded_notional": ",.0f", "realized": ",.2f",
                                             "fees": ",.2f", "funding": ",.2f", "final_position": ",.2f"},
                                 signed=("realized", "funding"))}</div></div>
<h2>Equity and drawdown</h2>{page.figure(_equity_figure(art))}
<h2>Exposure</h2>{page.figure(exposure) if exposure is not None else "<div class='sub'>no positions</div>"}
<h2>Prices, entries and exits</h2>{"".join(charts) or "<div class='sub'>no candles</div>"}
<h2>Returns</h2>{page.figure(bar)}{page.figure(heat)}
<h2>Round trips by symbol</h2>{table(breakdown(trips, "symbol"), money, signed=("net_pnl", "pnl", "funding"))}
<h2>Round trips by agent</h2><div class="sub">a trip belongs to the agent whose order opened it</div>
{table(breakdown(trips, "agent"), money, signed=("net_pnl", "pnl", "funding"))}
<h2>Round trips</h2><div class="sub">{trade_note}; PnL net of fees and funding</div>
{table(shown, {"entry_px": ",.6g", "exit_px": ",.6g", "size": ",.6g", "notional": ",.0f",
               "duration_min": ",.0f", "pnl": ",.2f", "fees": ",.2f", "funding": ",.4f",
               "net_pnl": ",.2f", "return": ".3%", "n_fills": "d"}, signed=("net_pnl",))}"""
    return page.write(path, f"{art.name} tearsheet", body)
