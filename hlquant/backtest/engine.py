"""The event-driven backtest: the kernel on a simulated clock, over columnar history.

The components are the kernel's (``hlquant.kernel.build_kernel``) and every
market event takes the kernel's one path (``MarketHandler``), exactly as in
paper and live trading. What is particular to the backtest is only how the
events are delivered: market history stays columnar, the loop walks the
merged (ts, kind, row) order of all streams once and calls the handler's
scalar methods straight from the columns, and feature values come from the
same numba kernels run over each stream's columns before the loop
(``compute_columnar``; a test proves this equals stepping them event by
event); the kernel's feature store (``ColumnarFeatures``) reads them from
their columns when an agent asks, at the row last delivered, with that row's
timestamp checked against the staleness rule, exactly as live.

The loop walks the events in chunks and converts each chunk's columns to
Python lists (indexing a list is several times cheaper than indexing a numpy
array element by element), so the lists never hold more than one chunk; it
allocates nothing per event unless something happens (an intent, an order).

Why no compiled (numba) loop for the market side: an agent triggered by
candles is called from Python on every bar, so such a loop would return to
Python once per bar anyway. Measured here, one call into a numba function from
Python costs ~0.65 us, about what the whole market side of a bar costs in
Python (SimVenue.on_candle with its liquidation band, marks, the risk engine's
price, equity sampling: ~1 us of ~5 us a bar); the rest is the agent, its
feature reads and the order path, which stay Python. It would also mean a
second implementation of the fill model to keep equal to the SimVenue's.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hlquant.agents.base import Agent
from hlquant.audit.log import AuditLog
from hlquant.config.connectors import build_connectors, check_signals
from hlquant.config.spec import DEFAULT_STALENESS, KernelSpec
from hlquant.core.assets import AssetSpec, known_assets
from hlquant.core.clock import SimClock
from hlquant.core.events import MARKET_DTYPES, MarketKind
from hlquant.data.series import SignalSeries
from hlquant.features.kernels import parse_specs
from hlquant.features.pipeline import ColumnarFeatures, compute_columnar
from hlquant.features.store import StalenessRules
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
_SIGNAL = max(int(k) for k in MarketKind) + 1
"""The loop's kind code of an external series' row (not a market stream)."""


def merge_signals(merged: tuple[np.ndarray, np.ndarray, np.ndarray], signals: SignalSeries
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The market's replay order with the signal rows merged in at their *receive* time
    (a value is never applied before it could have been known). At equal times signals
    come first: received at t, visible to a decision at t. Rows received before the
    first market event are applied at its time, rows after the last are dropped."""
    ts, kind, row = merged
    if not len(signals) or not len(ts):
        return merged
    recv = np.maximum(signals.ts_recv, ts[0])
    keep = recv <= ts[-1]
    sig_rows = np.flatnonzero(keep)
    all_ts = np.concatenate([ts, recv[keep]])
    prio = np.concatenate([kind.astype(np.int16), np.full(len(sig_rows), -1, np.int16)])
    order = np.lexsort((prio, all_ts))
    all_kind = np.concatenate([kind, np.full(len(sig_rows), _SIGNAL, kind.dtype)])
    all_row = np.concatenate([row, sig_rows.astype(row.dtype)])
    return all_ts[order], all_kind[order], all_row[order]


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
        signals: SignalSeries | None = None,
        connectors: Sequence[Any] = (),
    ) -> None:
        """Either ``agents`` and the component configs, or a ``spec`` built from a config.
        ``signals`` / ``connectors`` (``SignalConnector``s, asked for their ``history``):
        external series merged with the market data by receive time; neither given, the
        spec's ``connectors`` are built (the config's ``connectors`` group)."""
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
        all_assets = dict(assets or known_assets(list(market.symbols)))
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
        if signals is None and not connectors:  # the spec's own (the `connectors` config group)
            connectors = list(build_connectors(spec.connectors, "sim", list(market.symbols)).values())
        parts = {"signals": signals} if signals is not None else {}
        parts.update({getattr(c, "name", f"connector{i}"): c.history(market) for i, c in enumerate(connectors)})
        check_signals(self.agents, {k: v.names() for k, v in parts.items()})
        self.signals = (SignalSeries.concat(list(parts.values())).select(symbols=list(market.symbols))
                        if parts else None)

    @property
    def venue_config(self) -> SimVenueConfig:
        return self.spec.venue

    # ------------------------------------------------------------------
    def _wire(self) -> None:
        t0 = int(self.market.span()[0]) if len(self.market) else 0
        self.features = ColumnarFeatures(self.market.symbols, StalenessRules(self.spec.staleness))
        k = build_kernel(self.spec, Role.ALL, assets=self.assets, clock=SimClock(t0), out_dir=self.out_dir,
                         session=self.session, audit_flush_every=self.audit_flush_every, store=self.features)
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
        feats = self.features
        feats.bind(cols, arrays)
        h = MarketHandler(k, faults=self.spec.faults)
        self.handler = h

        ts_arr, kind_arr, row_arr = m.merged()
        sg = self.signals
        if sg is not None and len(sg):
            ts_arr, kind_arr, row_arr = merge_signals((ts_arr, kind_arr, row_arr), sg)
            s_name, s_sym, s_exch, s_val = sg.name.tolist(), sg.symbol.tolist(), sg.ts_exch.tolist(), sg.value.tolist()
        on_signal = h.on_signal
        n = len(ts_arr)
        empty = {k: np.zeros(0, MARKET_DTYPES[k]) for k in MarketKind}
        src = {k: arrays.get(k) if arrays.get(k) is not None else empty[k] for k in MarketKind}
        l2 = src[MarketKind.L2]

        def cursor(kind: MarketKind) -> list[int]:
            c = feats.cursor(kind)
            return c if c is not None else [-1] * nsym

        cur_c, cur_t, cur_l, cur_b, cur_f, cur_m = (
            cursor(MarketKind.CANDLE), cursor(MarketKind.TRADE), cursor(MarketKind.L2),
            cursor(MarketKind.BBO), cursor(MarketKind.FUNDING), cursor(MarketKind.MARK),
        )
        on_candle, on_trade, on_book, on_bbo, on_funding, on_mark = (
            h.on_candle, h.on_trade, h.on_book, h.on_bbo, h.on_funding, h.on_mark,
        )
        if h.batching:  # decide_batch agents: one call per instant and trigger kind
            on_candle, on_trade, on_book, on_bbo, on_funding, on_mark = (
                h.grouped(on_candle, "candle"), h.grouped(on_trade, "trade"), h.grouped(on_book, "l2"),
                h.grouped(on_bbo, "bbo"), h.grouped(on_funding, "funding"), h.grouped(on_mark, "mark"),
            )
        advance = h.advance
        clock = self.clock
        t0 = int(ts_arr[0]) if n else clock.now_ms()
        clock.t = t0
        h.start(t0)
        cur_t_ms = t0

        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, unit="ev", unit_scale=True, desc=self.name, mininterval=0.5)
        chunk = 100_000
        t_loop = time.perf_counter()
        # what is allocated so far lives for the whole run: the collector need not scan it
        # again and again
        gc.freeze()
        try:
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                # this chunk's events as lists (indexing a list is several times cheaper than
                # a numpy array element by element), and the columns of the rows it reads:
                # each stream's rows come in increasing order, so they are one slice per stream
                ts_l = ts_arr[start:stop].tolist()
                kind_l = kind_arr[start:stop].tolist()
                row_l = row_arr[start:stop].tolist()
                rows, kinds = row_arr[start:stop], kind_arr[start:stop]

                def cols(kd: MarketKind, fields: Sequence[str], rows=rows, kinds=kinds) -> list:
                    mine = rows[kinds == int(kd)]
                    lo, hi = (int(mine[0]), int(mine[-1]) + 1) if len(mine) else (0, 0)
                    return [lo] + [src[kd][f][lo:hi].tolist() for f in fields]

                c0, c_sym, c_o, c_h, c_l, c_c, c_v = cols(
                    MarketKind.CANDLE, ("sym", "open", "high", "low", "close", "volume"))
                t0_, t_sym, t_side, t_px, t_sz = cols(MarketKind.TRADE, ("sym", "side", "px", "sz"))
                f0, f_sym, f_rate, f_orc, f_prem = cols(MarketKind.FUNDING,
                                                        ("sym", "rate", "oracle_px", "premium"))
                b0, b_sym, b_bp, b_bs, b_ap, b_as = cols(
                    MarketKind.BBO, ("sym", "bid_px", "bid_sz", "ask_px", "ask_sz"))
                k0, k_sym, k_mark = cols(MarketKind.MARK, ("sym", "mark_px"))
                l0, l_sym = cols(MarketKind.L2, ("sym",))
                for i in range(stop - start):
                    t = ts_l[i]
                    if t != cur_t_ms:
                        cur_t_ms = t
                        clock.t = t
                        advance(t)
                    k_ = kind_l[i]
                    r = row_l[i]
                    if k_ == _CANDLE:
                        j = r - c0
                        s = c_sym[j]
                        cur_c[s] = r
                        on_candle(names[s], t, c_o[j], c_h[j], c_l[j], c_c[j], c_v[j])
                    elif k_ == _TRADE:
                        j = r - t0_
                        s = t_sym[j]
                        cur_t[s] = r
                        on_trade(names[s], t, t_side[j], t_px[j], t_sz[j])
                    elif k_ == _L2:
                        s = l_sym[r - l0]
                        cur_l[s] = r
                        rec = l2[r]
                        on_book(names[s], t, rec["bid_px"], rec["bid_sz"], rec["ask_px"], rec["ask_sz"])
                    elif k_ == _FUNDING:
                        j = r - f0
                        s = f_sym[j]
                        cur_f[s] = r
                        on_funding(names[s], t, f_rate[j], f_orc[j], f_prem[j])
                    elif k_ == _BBO:
                        j = r - b0
                        s = b_sym[j]
                        cur_b[s] = r
                        on_bbo(names[s], t, b_bp[j], b_bs[j], b_ap[j], b_as[j])
                    elif k_ == _MARK:
                        j = r - k0
                        s = k_sym[j]
                        cur_m[s] = r
                        on_mark(names[s], t, k_mark[j])
                    elif k_ == _SIGNAL:
                        on_signal(s_name[r], s_sym[r], s_exch[r], s_val[r])
                if bar is not None:
                    bar.update(stop - start)
        finally:
            gc.unfreeze()
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
                                 self.spec.venue.initial_cash, self.name, self.params,
                                 prices=closes(self.market), orders=orders_from_audit(self.audit.frame()))
        counts = self.runner.counts
        art.decisions = {c: int(counts.get(c, 0)) for c in ("decisions", "stale_skipped", "warmup_skipped")}
        metrics = build_report(art)
        stats = {
            "events": n_events,
            "loop_seconds": loop_s,
            "feature_seconds": feat_s,
            "events_per_second": n_events / loop_s if loop_s > 0 else float("inf"),
            "signals": self.handler.signals,
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
