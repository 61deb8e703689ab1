"""Self-contained HTML pages with plotly charts that open offline, alone.

A page carries everything it needs: the plotly bundle, gzip-compressed and
base64-encoded (4.8 MB of JavaScript becomes 2.0 MB, unpacked by the browser's
``DecompressionStream``), and each chart's data as JSON. Nothing is loaded
from beside the page or from the network, so a report copied to another
folder, mailed or archived still shows every chart; no run writes a
``plotly.min.js`` of its own.

Long series are downsampled for display with MinMax-LTTB (``tsdownsample``):
the shape, peaks and troughs of a million-bar equity curve survive in a few
thousand points, so a page stays small and opens quickly at any run length.
Full-resolution data stays in the run's Parquet files.

When the charts are drawn the page sets ``data-charts="ready"`` on ``<body>``
(``"error"`` and a visible message if the browser cannot unpack the bundle):
tests/report/test_browser.py waits for that in headless Chromium.
"""

from __future__ import annotations

import base64
import functools
import gzip
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

MAX_POINTS = 2_000
"""Points per line after downsampling (a screen is ~2,000 pixels wide)."""

_LOADER = """
<script>
(async function () {
  const body = document.body;
  try {
    if (typeof DecompressionStream === "undefined") throw new Error(
      "this browser cannot unpack the embedded charting library (needs DecompressionStream: " +
      "Chrome/Edge 80+, Firefox 113+, Safari 16.4+)");
    const b64 = document.getElementById("hlq-plotly").textContent.trim();
    const bin = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const stream = new Blob([bin]).stream().pipeThrough(new DecompressionStream("gzip"));
    const code = await new Response(stream).text();
    const tag = document.createElement("script");
    tag.textContent = code;
    document.head.appendChild(tag);
    for (const div of document.querySelectorAll("div[data-fig]")) {
      const fig = JSON.parse(document.getElementById(div.dataset.fig).textContent);
      await Plotly.newPlot(div, fig.data, fig.layout, {responsive: true, displaylogo: false});
    }
    body.dataset.charts = "ready";
  } catch (e) {
    body.dataset.charts = "error";
    const p = document.createElement("p");
    p.className = "warn";
    p.textContent = "charts could not be drawn: " + e.message;
    body.prepend(p);
  }
})();
</script>
"""

BASE_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin-bottom:2px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
.sub{color:#666;font-size:13px} table{border-collapse:collapse;font-size:13px}
td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right} th{background:#f6f6f6}
td:first-child,th:first-child{text-align:left} .grid{display:flex;gap:40px;flex-wrap:wrap}
.pos{color:#127a2e} .neg{color:#b3261e} .note{color:#8a6d00;font-size:12px}
.warn{background:#fdecea;border:1px solid #e0a39d;padding:8px 12px;border-radius:4px}
.warn li{margin:2px 0} .chart{min-height:200px}
"""


@functools.cache
def plotly_bundle() -> str:
    """plotly.js (the version plotly.py ships), gzip-compressed and base64-encoded."""
    from plotly.offline import get_plotlyjs

    return base64.b64encode(gzip.compress(get_plotlyjs().encode("utf-8"), 9, mtime=0)).decode("ascii")


def downsample(x: np.ndarray, y: np.ndarray, n: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``n`` points of (x, y) that keep the shape of the line (MinMax-LTTB;
    first and last point kept). All indices when there are no more than ``n``."""
    m = len(y)
    if m <= n:
        return np.arange(m)
    from tsdownsample import MinMaxLTTBDownsampler

    yy = np.asarray(y, dtype=np.float64)
    finite = np.isfinite(yy)
    if not finite.all():  # the downsampler needs numbers: fill gaps with the last value
        yy = np.where(finite, yy, np.nan)
        idx = np.where(finite, np.arange(m), 0)
        np.maximum.accumulate(idx, out=idx)
        yy = yy[idx]
        yy[~np.isfinite(yy)] = 0.0
    return MinMaxLTTBDownsampler().downsample(np.asarray(x, dtype=np.int64), yy, n_out=max(n, 4))


def time_ms(index: Any) -> np.ndarray:
    """Milliseconds since the epoch of a DatetimeIndex (plotly date axes read numbers as ms)."""
    import pandas as pd

    idx = pd.DatetimeIndex(index)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.as_unit("ms").asi8


class Page:
    """An HTML page under construction: add figures, then ``render`` it."""

    def __init__(self) -> None:
        self._figs: list[str] = []

    def figure(self, fig: Any, height: int | None = None) -> str:
        """A placeholder ``<div>`` for a plotly figure; its data goes in the page as JSON."""
        i = len(self._figs)
        self._figs.append(fig.to_json().replace("</", "<\\/"))
        style = f' style="height:{int(height)}px"' if height else ""
        return f'<div class="chart" id="hlq-chart-{i}" data-fig="hlq-fig-{i}"{style}></div>'

    def render(self, title: str, body: str, css: str = "") -> str:
        data = "".join(f'<script type="application/json" id="hlq-fig-{i}">{j}</script>\n'
                       for i, j in enumerate(self._figs))
        bundle = (f'<script type="application/octet-stream" id="hlq-plotly">{plotly_bundle()}</script>'
                  if self._figs else "")
        loader = _LOADER if self._figs else "<script>document.body.dataset.charts='ready'</script>"
        return (f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
                f"<style>{BASE_CSS}{css}</style></head><body>\n{body}\n{data}{bundle}{loader}</body></html>")

    def write(self, path: str | Path, title: str, body: str, css: str = "") -> Path:
        """Render to ``path`` atomically (write a temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.render(title, body, css), encoding="utf-8")
        tmp.replace(path)
        return path


def table(rows: list[dict[str, Any]] | Any, fmt: dict[str, str] | None = None,
          signed: tuple[str, ...] = ()) -> str:
    """An HTML table of a DataFrame or a list of dicts; ``fmt``: column -> format spec;
    ``signed``: columns colored by sign."""
    import pandas as pd

    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    fmt = fmt or {}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for c, v in zip(df.columns, row, strict=True):
            if isinstance(v, float | np.floating):
                txt = "" if v != v else ("∞" if np.isinf(v) else format(float(v), fmt.get(c, ",.4f")))
                cls = ("pos" if v > 0 else "neg" if v < 0 else "") if c in signed else ""
                cells.append(f'<td class="{cls}">{txt}</td>' if cls else f"<td>{txt}</td>")
            else:
                cells.append(f"<td>{html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def to_json_safe(o: Any) -> Any:
    """Values strict JSON can carry: inf and NaN become null, other objects their str."""
    if isinstance(o, float | np.floating):
        return float(o) if math.isfinite(o) else None
    if isinstance(o, dict):
        return {str(k): to_json_safe(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [to_json_safe(v) for v in o]
    if o is None or isinstance(o, str | bool | int):
        return o
    if isinstance(o, np.integer):
        return int(o)
    return json.loads(json.dumps(o, default=str))
