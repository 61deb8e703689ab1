"""The event-driven backtest: the kernel on a simulated clock, over columnar history.

The components are the kernel's (``hlquant.kernel.build_kernel``) and every
market event takes the kernel's one path (``MarketHandler``), exactly as in
paper and live trading. What is particular to the backtest is only how the
events are delivered: market history stays columnar, the loop walks the
merged (ts, kind, row) order of all streams once and calls the handler's
scalar methods straight from the columns, and feature values come from the
same numba kernels run over each stream's columns before the loop
(``compute_columnar``; a test proves this equals stepping them event by
event), written to the FeatureStore with their source timestamp when an
agent is about to read them, so staleness rules apply exactly as live.

Columns are converted to Python lists up front: indexing a list is several
times cheaper than indexing a numpy array element by element, and the loop
allocates nothing per event unless something happens (an intent, an order).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hlquant.agents.base import Agent
from hlquant.audit.log import AuditLog, redact, redact_text
from hlquant.config.spec import DEFAULT_STALENESS, KernelSpec
from hlquant.core.assets import DEFAULT_ASSETS, AssetSpec
from hlquant.core.clock import SimClock
from hlquant.core.events import MarketKind
from hlquant.features.kernels import parse_specs
from hlquant.features.pipeline import ColumnarFeatures, compute_columnar
from hlquant.kernel import MarketHandler, Role, build_kernel
from hlquant.report.metrics import artifacts_from_run, build_report, closes, run_warnings
from hlquant.report.trades import orders_from_audit
from hlquant.risk.engine import RiskConfig
from hlquant.router.router import RouterConfig
from hlquant.venues.sim import SimVenueConfig

_CANDLE, _TRADE, _L2, _BBO, _FUNDING, _MARK = (
    int(MarketKind.CANDLE), int(MarketKind.TRADE), int(MarketKind.L2), int(MarketKind.BBO),
    int(MarketKind.FUNDING), int(MarketKind.MARK),
)


@dataclass
class BacktestResult:
    """What a run produced: report inputs, metrics, counters and where files went."""

    artifacts: Any  # hlquant.report.RunArtifacts
    metrics: pd.Series
    stats: dict[str, Any]
    audit: AuditLog
    out_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)


class Backtest:
    """Run agents over market history through risk, router and the SimVenue.

    >>> bt = Backtest(load_sample(), [MACross(AgentConfig("ma", ("BTC",)))])
    >>> result = bt.run()
    """

    def __init__(
        self,
        market: Any,
        agents: Sequence[Agent] | None = None,
        *,
        venue: SimVenueConfig | None = None,
        risk: RiskConfig | None = None,
        router: RouterConfig | None = None,
        staleness: Mapping[str, int] | None = None,
        assets: Mapping[str, AssetSpec] | None = None,
        out_dir: str | Path | None = None,
        session: str | None = None,
        faults: Sequence[Mapping[str, Any]] = (),
        name: str = "backtest",
        params: Mapping[str, Any] | None = None,
        progress: bool = False,
        audit_flush_every: int = 20_000,
        on_error: str = "raise",
        spec: KernelSpec | None = None,
    ) -> None:
        """Either ``agents`` and the component configs, or a ``spec`` built from a config."""
        if spec is None:
            spec = KernelSpec(
                agents=list(agents or ()), mode="sim", venue=venue or SimVenueConfig(),
                risk=risk or RiskConfig(), router=router or RouterConfig(),
                staleness=dict(staleness or DEFAULT_STALENESS), on_error=on_error,
                faults=tuple((int(f["at"]), str(f["agent"])) for f in faults), name=name,
                params=dict(params or {}),
            )
        self.spec = spec
        self.market = market
        self.agents = list(spec.agents)
        self.name = spec.name
        self.params = dict(spec.params)
        all_assets = dict(assets or DEFAULT_ASSETS)
        missing = [s for s in market.symbols if s not in all_assets]
        if missing:
            raise ValueError(f"no asset spec for {missing}; pass assets= with their szDecimals")
        self.assets = {s: all_assets[s] for s in market.symbols}
        for a in self.agents:
            bad = [s for s in a.symbols if s not in self.assets]
            if bad:
                raise ValueError(f"agent {a.name} trades {bad}, not in the data ({market.symbols})")
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.session = session or uuid.uuid4().hex[:12]
        self.progress = progress
        self.audit_flush_every = audit_flush_every

    @property
    def venue_config(self) -> SimVenueConfig:
        return self.spec.venue

    # ------------------------------------------------------------------
    def _wire(self) -> None:
        t0 = int(self.market.span()[0]) if len(self.market) else 0
        k = build_kernel(self.spec, Role.ALL, assets=self.assets, clock=SimClock(t0), out_dir=self.out_dir,
                         session=self.session, audit_flush_every=self.audit_flush_every)
        k.symbols = list(self.market.symbols)  # the equity curve's columns: every symbol of the data
        self.kernel = k
        self.clock, self.audit, self.store, self.portfolio = k.clock, k.audit, k.store, k.portfolio
        self.venue, self.router, self.risk, self.runner = k.venue, k.router, k.risk, k.runner
        self.feature_specs = k.feature_specs

    # ------------------------------------------------------------------
    def run(self) -> BacktestResult:
        self._wire()
        try:
            return self._run()
        finally:
            self.audit.close()  # the evidence survives every way out, a strategy's crash included

    def _run(self) -> BacktestResult:
        m = self.market
        k = self.kernel
        names = list(m.symbols)
        nsym = len(names)
        arrays = m.arrays()
        t_start = time.perf_counter()
        cols = (compute_columnar(parse_specs(self.feature_specs), arrays, nsym, names)
                if self.feature_specs else {})
        t_feat = time.perf_counter() - t_start
        feats = ColumnarFeatures(cols, arrays, names, self.store) if cols else None
        h = MarketHandler(k, before_decide=feats.before_decide if feats else None, faults=self.spec.faults)
        self.handler = h

        ts_arr, kind_arr, row_arr = m.merged()
        ts_l, kind_l, row_l = ts_arr.tolist(), kind_arr.tolist(), row_arr.tolist()
        n = len(ts_l)

        def lists(kind: MarketKind, fields: Sequence[str]) -> list[list]:
            a = arrays.get(kind)
            if a is None or not len(a):
                return [[] for _ in fields]
            return [a[f].tolist() for f in fields]

        c_sym, c_o, c_h, c_l, c_c, c_v = lists(
            MarketKind.CANDLE, ("sym", "open", "high", "low", "close", "volume")
        )
        t_sym, t_side, t_px, t_sz = lists(MarketKind.TRADE, ("sym", "side", "px", "sz"))
        f_sym, f_rate, f_orc, f_prem = lists(MarketKind.FUNDING, ("sym", "rate", "oracle_px", "premium"))
        b_sym, b_bp, b_bs, b_ap, b_as = lists(
            MarketKind.BBO, ("sym", "bid_px", "bid_sz", "ask_px", "ask_sz")
        )
        k_sym, k_mark = lists(MarketKind.MARK, ("sym", "mark_px"))
        l2 = arrays.get(MarketKind.L2)
        l_sym = l2["sym"].tolist() if l2 is not None and len(l2) else []

        def cursor(kind: MarketKind) -> list[int]:
            c = feats.cursor(kind) if feats is not None else None
            return c if c is not None else [-1] * nsym

        cur_c, cur_t, cur_l, cur_b, cur_f, cur_m = (
            cursor(MarketKind.CANDLE), cursor(MarketKind.TRADE), cursor(MarketKind.L2),
            cursor(MarketKind.BBO), cursor(MarketKind.FUNDING), cursor(MarketKind.MARK),
        )
        on_candle, on_trade, on_book, on_bbo, on_funding, on_mark = (
            h.on_candle, h.on_trade, h.on_book, h.on_bbo, h.on_funding, h.on_mark,
        )
        advance = h.advance
        clock = self.clock
        t0 = ts_l[0] if n else clock.now_ms()
        clock.t = t0
        h.start(t0)
        cur_t_ms = t0

        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, unit="ev", unit_scale=True, desc=self.name, mininterval=0.5)
        chunk = 100_000
        t_loop = time.perf_counter()
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            for i in range(start, stop):
                t = ts_l[i]
                if t != cur_t_ms:
                    cur_t_ms = t
                    clock.t = t
                    advance(t)
                k_ = kind_l[i]
                r = row_l[i]
                if k_ == _CANDLE:
                    s = c_sym[r]
                    cur_c[s] = r
                    on_candle(names[s], t, c_o[r], c_h[r], c_l[r], c_c[r], c_v[r])
                elif k_ == _TRADE:
                    s = t_sym[r]
                    cur_t[s] = r
                    on_trade(names[s], t, t_side[r], t_px[r], t_sz[r])
                elif k_ == _L2:
                    s = l_sym[r]
                    cur_l[s] = r
                    rec = l2[r]
                    on_book(names[s], t, rec["bid_px"], rec["bid_sz"], rec["ask_px"], rec["ask_sz"])
                elif k_ == _FUNDING:
                    s = f_sym[r]
                    cur_f[s] = r
                    on_funding(names[s], t, f_rate[r], f_orc[r], f_prem[r])
                elif k_ == _BBO:
                    s = b_sym[r]
                    cur_b[s] = r
                    on_bbo(names[s], t, b_bp[r], b_bs[r], b_ap[r], b_as[r])
                elif k_ == _MARK:
                    s = k_sym[r]
                    cur_m[s] = r
                    on_mark(names[s], t, k_mark[r])
            if bar is not None:
                bar.update(stop - start)
        if bar is not None:
            bar.close()
        h.finish()
        loop_s = time.perf_counter() - t_loop
        eq_t, eq_v, pos_v = h.curve.arrays()
        return self._result(eq_t, eq_v, pos_v, n, loop_s, t_feat)

    # ------------------------------------------------------------------
    def _result(self, eq_t, eq_v, pos_v, n_events: int, loop_s: float, feat_s: float) -> BacktestResult:
        k = self.kernel
        # the report (metrics.json, report.html) shows the name and params: never a secret
        art = artifacts_from_run((eq_t, eq_v, pos_v), list(self.market.symbols), k.fills, k.funding,
                                 self.spec.venue.initial_cash, redact_text(self.name), redact(self.params),
                                 prices=closes(self.market), orders=orders_from_audit(self.audit.frame()))
        counts = self.runner.counts
        art.decisions = {c: int(counts.get(c, 0)) for c in ("decisions", "stale_skipped", "warmup_skipped")}
        metrics = build_report(art)
        stats = {
            "events": n_events,
            "loop_seconds": loop_s,
            "feature_seconds": feat_s,
            "events_per_second": n_events / loop_s if loop_s > 0 else float("inf"),
            "agents": dict(self.runner.counts),
            "stale_reads": dict(self.store.stale_reads),
            "risk": dict(self.risk.counts),
            "router": vars(self.router.stats).copy(),
            "audit": dict(self.audit.counts),
            "killed": self.risk.kill_reason if self.risk.killed else "",
            "reconcile": self.portfolio.reconcile(self.venue.positions()),
            "session": self.session,
        }
        art.warnings = run_warnings(art, metrics, stats["stale_reads"], stats["killed"])
        return BacktestResult(art, metrics, stats, self.audit, self.out_dir)
