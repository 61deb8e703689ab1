"""Report of a long run: size and time of report.html against the full-resolution page.

    .venv/bin/python bench/report_size.py [--bars 1000000]

Baseline, in the same run: the same charts with every point (plotly's own
``to_html`` with the library inlined), which is what a report without
downsampling would carry. Then hlquant's ``write_report`` (MinMax-LTTB
downsampled charts, the library gzip-embedded once): bytes and seconds, and
the ratios. The run is synthetic (tests/report/test_report_html.py:long_run):
equity, three symbols' prices and positions, 30,000 fills.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=int, default=1_000_000)
    args = ap.parse_args(argv)

    import plotly.graph_objects as go

    from hlquant.report.files import write_report
    from tests.report.test_report_html import long_run

    art = long_run(args.bars)
    out = Path(tempfile.mkdtemp(prefix="hlq-report-"))
    t = time.perf_counter()
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=art.equity.index, y=art.equity.to_numpy(), name="equity"))
    for s in art.prices.columns:
        fig.add_trace(go.Scatter(x=art.prices.index, y=art.prices[s].to_numpy(), name=s))
        fig.add_trace(go.Scatter(x=art.positions.index, y=art.positions[s].to_numpy(), name=f"{s} position"))
    full = out / "full_resolution.html"
    fig.write_html(full, include_plotlyjs=True)
    base_s, base_b = time.perf_counter() - t, full.stat().st_size
    t = time.perf_counter()
    files = write_report(art, out / "run")
    ours_s, ours_b = time.perf_counter() - t, files["report_html"].stat().st_size
    mb = 1024 * 1024
    print(f"{args.bars:,} bars")
    print(f"  full-resolution page (equity, prices, positions only): {base_b / mb:8.1f} MB  {base_s:6.1f} s")
    print(f"  hlquant report.html (all charts, tables, all files):   {ours_b / mb:8.1f} MB  {ours_s:6.1f} s")
    print(f"  ratio: {base_b / ours_b:.1f}x smaller, {base_s / ours_s:.1f}x faster (write_report writes "
          f"Parquet, PNG and HTML)")
    print(f"  files in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
