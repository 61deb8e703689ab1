"""The event-driven backtest: every box of the data flow on a simulated clock.

Market history stays columnar. The loop walks the merged (ts, kind, row)
order of all streams once; per event it advances the clock, feeds the
SimVenue (which matches resting orders and triggers), updates marks and the
risk engine's price, and calls the agents whose trigger it is. Feature
values are produced by the same numba kernels as live mode, run over each
stream's columns before the loop (``compute_columnar``; a test proves this
equals stepping them event by event), and written to the FeatureStore with
their source timestamp when an agent is about to read them, so staleness
rules apply exactly as live.

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

import numpy as np
import pandas as pd

from hlquant.agents.base import Agent
from hlquant.agents.blackboard import InMemoryBlackboard, InMemoryHeartbeats
from hlquant.agents.runner import AgentRunner
from hlquant.audit.log import AuditLog
from hlquant.core.assets import DEFAULT_ASSETS, AssetSpec
from hlquant.core.clock import SimClock
from hlquant.core.events import Event, Fill, FundingPayment, MarketKind
from hlquant.features.kernels import parse_specs
from hlquant.features.pipeline import compute_columnar
from hlquant.features.store import InMemoryFeatureStore, StalenessRules
from hlquant.portfolio.portfolio import Portfolio
from hlquant.risk.engine import RiskConfig, RiskEngine
from hlquant.router.idempotency import InMemoryIdempotencyStore
from hlquant.router.router import OrderRouter, RouterConfig
from hlquant.venues.sim import SimVenue, SimVenueConfig

_CANDLE, _TRADE, _L2, _BBO, _FUNDING, _MARK = (
    int(MarketKind.CANDLE), int(MarketKind.TRADE), int(MarketKind.L2), int(MarketKind.BBO),
    int(MarketKind.FUNDING), int(MarketKind.MARK),
)
_TRIGGER_KIND = {"candle": _CANDLE, "trade": _TRADE, "l2": _L2, "funding": _FUNDING}


@dataclass
class BacktestResult:
    """What a run produced: report inputs, metrics, counters and where files went."""

    artifacts: Any  # hlquant.backtest.report.RunArtifacts
    metrics: pd.Series
    stats: dict[str, Any]
    audit: AuditLog
    out_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)


def resolve_feature_specs(agents: Sequence[Agent]) -> tuple[list[dict], dict[str, dict[str, str]]]:
    """Union of the agents' feature specs. Two agents declaring the same name with
    the same spec share one feature; different specs under one name are kept apart
    as ``<agent>.<name>`` and each agent reads its own through an alias."""
    by_name: dict[str, list[tuple[str, dict]]] = {}
    for a in agents:
        for spec in a.feature_specs():
            by_name.setdefault(spec["name"], []).append((a.name, spec))
    specs: list[dict] = []
    aliases: dict[str, dict[str, str]] = {a.name: {} for a in agents}
    for name, decls in by_name.items():
        distinct = {repr(sorted(s.items())) for _, s in decls}
        if len(distinct) == 1:
            specs.append(decls[0][1])
            continue
        seen: dict[str, str] = {}
        for agent, spec in decls:
            key = repr(sorted(spec.items()))
            glob = seen.setdefault(key, f"{agent}.{name}")
            if glob == f"{agent}.{name}":
                specs.append({**spec, "name": glob})
            aliases[agent][name] = glob
    return specs, aliases


class Backtest:
    """Run agents over market history through risk, router and the SimVenue.

    >>> bt = Backtest(load_sample(), [MACross(AgentConfig("ma", ("BTC",)))])
    >>> result = bt.run()
    """

    def __init__(
        self,
        market: Any,
        agents: Sequence[Agent],
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
    ) -> None:
        self.market = market
        self.agents = list(agents)
        self.venue_config = venue or SimVenueConfig()
        self.risk_config = risk or RiskConfig()
        self.router_config = router or RouterConfig()
        self.staleness = StalenessRules(staleness or {"default": 500})
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
        self.faults = list(faults)
        self.name = name
        self.params = dict(params or {})
        self.progress = progress
        self.audit_flush_every = audit_flush_every

    # ------------------------------------------------------------------
    def _wire(self) -> None:
        t0 = int(self.market.span()[0]) if len(self.market) else 0
        self.clock = SimClock(t0)
        audit_dir = self.out_dir / "audit" if self.out_dir is not None else None
        self.audit = AuditLog(audit_dir, self.session, self.audit_flush_every)
        self.store = InMemoryFeatureStore(self.staleness)
        self.blackboard = InMemoryBlackboard()
        self.heartbeats = InMemoryHeartbeats()
        self.portfolio = Portfolio(self.venue_config.initial_cash)
        self.venue = SimVenue(self.assets, self.venue_config, self.clock)
        self.router = OrderRouter(
            self.venue, InMemoryIdempotencyStore(), self.clock, self.audit, self.router_config
        )
        self.risk = RiskEngine(
            self.risk_config, self.blackboard, self.heartbeats, self.portfolio, self.router,
            self.audit, self.clock,
        )
        self._fills: list[tuple] = []
        self._funding: list[tuple] = []
        self.router.sinks.append(self._on_venue_event)
        marks = self.portfolio.marks
        specs, aliases = resolve_feature_specs(self.agents)
        self.feature_specs = specs
        self.runner = AgentRunner(
            self.agents, self.blackboard, self.heartbeats, self.store, self.portfolio,
            lambda s: marks.get(s, float("nan")), self.risk.on_intent, self.audit, aliases,
        )
        for a in self.agents:
            self.risk.register_agent(a.name)

    def _on_venue_event(self, ev: Event) -> None:
        if isinstance(ev, Fill):
            self.portfolio.on_fill(ev)
            self._fills.append(
                (ev.ts_exch, ev.symbol, ev.agent, int(ev.side), ev.px, ev.sz, ev.fee,
                 ev.closed_pnl, ev.liquidity, ev.cloid)
            )
        elif isinstance(ev, FundingPayment):
            self.portfolio.on_funding(ev)
            self._funding.append((ev.ts_exch, ev.symbol, ev.amount, ev.rate, ev.position))

    # ------------------------------------------------------------------
    def run(self) -> BacktestResult:
        self._wire()
        m = self.market
        names = list(m.symbols)
        nsym = len(names)
        arrays = m.arrays()
        t_start = time.perf_counter()
        cols = compute_columnar(parse_specs(self.feature_specs), arrays, nsym) if self.feature_specs else {}
        t_feat = time.perf_counter() - t_start

        # features by source stream: [(name, values list)], written at trigger time
        feats_by_kind: dict[int, list[tuple[str, list]]] = {}
        for fname, col in cols.items():
            feats_by_kind.setdefault(int(col.kind), []).append((fname, col.values.tolist()))
        kind_ts = {int(k): a["ts_exch"].tolist() for k, a in arrays.items() if len(a)}
        cursor = {k: [-1] * nsym for k in feats_by_kind}

        def write_features(s: int) -> None:
            sym = names[s]
            for k, flist in feats_by_kind.items():
                r = cursor[k][s]
                if r >= 0:
                    self.store.put_many(sym, [(fn, vals[r]) for fn, vals in flist], kind_ts[k][r])

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
        f_sym, f_rate, f_orc = lists(MarketKind.FUNDING, ("sym", "rate", "oracle_px"))
        b_sym, b_bp, b_bs, b_ap, b_as = lists(
            MarketKind.BBO, ("sym", "bid_px", "bid_sz", "ask_px", "ask_sz")
        )
        k_sym, k_mark = lists(MarketKind.MARK, ("sym", "mark_px"))
        l2 = arrays.get(MarketKind.L2)
        l_sym = l2["sym"].tolist() if l2 is not None and len(l2) else []

        # triggers per (kind, sym)
        trig = {k: [False] * nsym for k in _TRIGGER_KIND.values()}
        for kind_name, sym in self.runner.triggers():
            trig[_TRIGGER_KIND[kind_name]][names.index(sym)] = True
        trig_c, trig_t, trig_l, trig_f = trig[_CANDLE], trig[_TRADE], trig[_L2], trig[_FUNDING]
        cur_c = cursor.get(_CANDLE, [-1] * nsym)
        cur_t = cursor.get(_TRADE, [-1] * nsym)
        cur_l = cursor.get(_L2, [-1] * nsym)
        cur_b = cursor.get(_BBO, [-1] * nsym)
        cur_f = cursor.get(_FUNDING, [-1] * nsym)
        has_feats = bool(feats_by_kind)

        faults = sorted((int(f["at"]), str(f["agent"])) for f in self.faults)
        fault_i = 0
        next_fault = faults[0][0] if faults else 2**62

        # equity samples at bar closes
        n_bars = len(c_c) // max(nsym, 1) + 2
        eq_t = np.empty(n_bars * 2, dtype=np.int64)
        eq_v = np.empty(n_bars * 2)
        pos_v = np.zeros((n_bars * 2, nsym))
        n_eq = 0

        clock, venue, runner, risk, router, portfolio = (
            self.clock, self.venue, self.runner, self.risk, self.router, self.portfolio,
        )
        marks = portfolio.marks
        on_price = risk.on_price
        t0 = ts_l[0] if n else 0
        runner.start(t0)
        hb_check_ms = min((a.config.heartbeat_ms for a in self.agents), default=60_000)
        next_hb_check = t0 + hb_check_ms
        cur_t_ms = t0
        pending_sample = False

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
                    if pending_sample:
                        if n_eq == len(eq_t):
                            eq_t = np.resize(eq_t, n_eq * 2)
                            eq_v = np.resize(eq_v, n_eq * 2)
                            pos_v = np.resize(pos_v, (n_eq * 2, nsym))
                        eq = portfolio.equity()
                        eq_t[n_eq] = cur_t_ms
                        eq_v[n_eq] = eq
                        for s in range(nsym):
                            pos_v[n_eq, s] = portfolio.notional(names[s])
                        n_eq += 1
                        pending_sample = False
                        risk.on_equity(eq)
                    cur_t_ms = t
                    clock.t = t
                    if t >= next_fault:
                        while fault_i < len(faults) and faults[fault_i][0] <= t:
                            runner.kill(faults[fault_i][1])
                            fault_i += 1
                        next_fault = faults[fault_i][0] if fault_i < len(faults) else 2**62
                    if t >= runner.next_beat_due:
                        runner.heartbeat(t)
                    if t >= next_hb_check:
                        risk.check_heartbeats(t)
                        next_hb_check = t + hb_check_ms
                    venue.advance(t)
                k = kind_l[i]
                r = row_l[i]
                if k == _CANDLE:
                    s = c_sym[r]
                    sym = names[s]
                    px = c_c[r]
                    venue.on_candle(sym, t, c_o[r], c_h[r], c_l[r], px, c_v[r])
                    marks[sym] = px
                    on_price(sym, px, t)
                    cur_c[s] = r
                    pending_sample = True
                    if trig_c[s]:
                        if has_feats:
                            write_features(s)
                        runner.on_trigger("candle", sym, t)
                elif k == _TRADE:
                    s = t_sym[r]
                    sym = names[s]
                    px = t_px[r]
                    venue.on_trade(sym, t, t_side[r], px, t_sz[r])
                    marks[sym] = px
                    on_price(sym, px, t)
                    cur_t[s] = r
                    if trig_t[s]:
                        if has_feats:
                            write_features(s)
                        runner.on_trigger("trade", sym, t)
                elif k == _L2:
                    s = l_sym[r]
                    rec = l2[r]
                    venue.on_book(names[s], t, rec["bid_px"], rec["bid_sz"], rec["ask_px"], rec["ask_sz"])
                    cur_l[s] = r
                    if trig_l[s]:
                        if has_feats:
                            write_features(s)
                        runner.on_trigger("l2", names[s], t)
                elif k == _FUNDING:
                    s = f_sym[r]
                    venue.on_funding(names[s], t, f_rate[r], f_orc[r])
                    cur_f[s] = r
                    if trig_f[s]:
                        if has_feats:
                            write_features(s)
                        runner.on_trigger("funding", names[s], t)
                elif k == _BBO:
                    s = b_sym[r]
                    venue.on_bbo(names[s], t, b_bp[r], b_bs[r], b_ap[r], b_as[r])
                    cur_b[s] = r
                elif k == _MARK:
                    s = k_sym[r]
                    venue.on_mark(names[s], t, k_mark[r])
                    marks[names[s]] = k_mark[r]
                if router.has_work:
                    router.flush()
            if bar is not None:
                bar.update(stop - start)
        if bar is not None:
            bar.close()
        if pending_sample:
            eq_t[n_eq], eq_v[n_eq] = cur_t_ms, portfolio.equity()
            for s in range(nsym):
                pos_v[n_eq, s] = portfolio.notional(names[s])
            n_eq += 1
        router.flush()
        loop_s = time.perf_counter() - t_loop
        self.audit.close()
        return self._result(eq_t[:n_eq], eq_v[:n_eq], pos_v[:n_eq], n, loop_s, t_feat)

    # ------------------------------------------------------------------
    def _result(self, eq_t, eq_v, pos_v, n_events: int, loop_s: float, feat_s: float) -> BacktestResult:
        from hlquant.backtest.report import RunArtifacts, build_report

        idx = pd.to_datetime(eq_t, unit="ms", utc=True)
        equity = pd.Series(eq_v, index=idx, name="equity")
        positions = pd.DataFrame(pos_v, index=idx, columns=list(self.market.symbols))
        fills = pd.DataFrame(
            self._fills,
            columns=["ts", "symbol", "agent", "side", "px", "sz", "fee", "closed_pnl", "liquidity", "cloid"],
        )
        fills["ts"] = pd.to_datetime(fills["ts"].astype("int64"), unit="ms", utc=True)
        funding = pd.DataFrame(self._funding, columns=["ts", "symbol", "amount", "rate", "position"])
        funding["ts"] = pd.to_datetime(funding["ts"].astype("int64"), unit="ms", utc=True)
        art = RunArtifacts(
            equity=equity, positions=positions, fills=fills, funding=funding,
            initial_cash=self.venue_config.initial_cash, name=self.name, params=self.params,
        )
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
        return BacktestResult(art, metrics, stats, self.audit, self.out_dir)
