"""Risk limits are hard limits at the price an order can execute (property-based).

Random agents ask for random targets and explicit orders (flips, reduce-only, limit
orders that rest, stops that open positions) against random limits, over random price
paths with gaps. After every fill of the backtest:

- a fill that adds to a symbol's position never leaves |position| x fill price above
  ``max_notional_per_symbol``;
- a fill that adds exposure at the moment it was decided (market and IOC orders: the
  backtest fills them at once) leaves gross exposure and leverage (gross / equity, both
  at that instant's marks, the fill at its own price) within ``max_gross_exposure`` and
  ``max_leverage``;
- orders sent in any window of event time never exceed burst + rate x window.

docs/risk.md states what each limit is measured at and when it is checked.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hlquant.agents import Agent, AgentConfig, Context, Intent
from hlquant.audit.log import payloads
from hlquant.backtest.engine import Backtest
from hlquant.core.events import MARKET_DTYPES, Fill, MarketKind, Side
from hlquant.data.market import MarketData
from hlquant.portfolio.portfolio import Portfolio
from hlquant.risk.engine import RiskConfig
from hlquant.router.router import RouterConfig

BAR = 60_000
T0 = 1_767_225_600_000
START = {"BTC": 90_000.0, "ETH": 3_000.0}
TOL = 1e-9


class Scripted(Agent):
    """Plays a list of actions, one per bar: None, ("target", usd), or
    ("order", side, usd, kind, reduce_only, offset) with kind market | limit | stop."""

    defaults = {"script": []}

    def decide(self, ctx: Context) -> Intent | None:
        i = (ctx.now - T0) // BAR
        script = self.params["script"]
        if not 0 <= i < len(script) or script[i] is None:
            return None
        a = script[i]
        px = ctx.price()
        if a[0] == "target":
            return ctx.target(a[1] / px)
        _, side, usd, kind, reduce_only, off = a
        size = usd / px
        if reduce_only:
            pos = ctx.position()
            if pos == 0:
                return None
            side, size = ("sell" if pos > 0 else "buy"), min(size, abs(pos))
        sign = 1 if side == "buy" else -1
        if kind == "limit":  # a resting order on the passive side of the market
            return ctx.order(side, size, px=px * (1 - sign * off), reduce_only=reduce_only)
        if kind == "stop":  # a stop that opens a position when the market moves through it
            return ctx.order(side, size, trigger_px=px * (1 + sign * off), tpsl="sl", reduce_only=reduce_only)
        return ctx.order(side, size, reduce_only=reduce_only)


def market_from(paths: dict[str, list[float]]) -> MarketData:
    syms = list(paths)
    rows = []
    for s, closes in paths.items():
        prev = START[s]
        for i, c in enumerate(closes):
            hi, lo = max(prev, c) * 1.001, min(prev, c) * 0.999
            rows.append((T0 + (i + 1) * BAR, T0 + (i + 1) * BAR, syms.index(s), prev, hi, lo, c, 10.0, 10))
            prev = c
    candles = np.array(rows, dtype=MARKET_DTYPES[MarketKind.CANDLE])
    return MarketData(candles=candles, symbols=syms, interval_ms=BAR)


def price_path(start: float, steps: list[float]) -> list[float]:
    out, p = [], start
    for r in steps:
        p = max(p * math.exp(r), start * 0.05)
        out.append(p)
    return out


returns = st.one_of(st.floats(-0.004, 0.004), st.floats(-0.15, 0.15))  # mostly quiet, sometimes a gap
action = st.one_of(
    st.none(),
    st.tuples(st.just("target"), st.floats(-200_000, 200_000)),
    st.tuples(st.just("order"), st.sampled_from(["buy", "sell"]), st.floats(20, 150_000),
              st.sampled_from(["market", "market", "limit", "stop"]), st.booleans(), st.floats(0.001, 0.05)),
)


@st.composite
def scenario(draw):
    n = draw(st.integers(40, 120))
    syms = draw(st.sampled_from([["BTC"], ["BTC", "ETH"]]))
    paths = {s: price_path(START[s], draw(st.lists(returns, min_size=n, max_size=n))) for s in syms}
    per_sym = draw(st.floats(2_000, 60_000))
    risk = RiskConfig(
        max_notional_per_symbol=per_sym,
        max_gross_exposure=draw(st.floats(per_sym, 3 * per_sym)),
        max_leverage=draw(st.floats(0.05, 3.0)),
        max_order_notional=draw(st.floats(per_sym / 4, 4 * per_sym)),
        max_orders_per_s=draw(st.floats(0.001, 0.05)),  # event time: orders per second of bars
        order_burst=draw(st.integers(1, 6)),
        max_price_age_ms=10 * BAR,
        max_drawdown=1.0,
        clip=draw(st.booleans()),
    )
    agents = []
    for k in range(draw(st.integers(1, 3))):
        script = draw(st.lists(action, min_size=n, max_size=n))
        agents.append(Scripted(AgentConfig(f"a{k}", tuple(syms), heartbeat_ttl_ms=10**9,
                                           params={"script": script})))
    style = draw(st.sampled_from(["market", "limit", "passive"]))
    return market_from(paths), agents, risk, RouterConfig(exec_style=style)


def check_fills(res, risk: RiskConfig, market: MarketData) -> int:
    """Replay the run's fills in order; returns how many added exposure (all checked)."""
    recs = payloads(res.audit.frame())
    orders = {r["cloid"]: r["ts_exch"] for r in recs if r["kind"] == "OrderRequest"}
    # candles in the order the backtest applies them: by time, then symbol
    rows = sorted((int(c["ts_exch"]), int(c["sym"]), float(c["close"])) for c in market.candles)
    marks: dict[str, float] = {}
    pf = Portfolio(100_000.0)
    checked = 0
    ri = 0
    for r in recs:
        if r["kind"] != "Fill":
            continue
        t = r["ts_exch"]
        # a fill at t follows the candle of its own symbol at t (and those before it), not later ones
        upto = (t, market.symbols.index(r["symbol"]))
        while ri < len(rows) and rows[ri][:2] <= upto:
            marks[market.symbols[rows[ri][1]]] = rows[ri][2]
            ri += 1
        for s, m in marks.items():
            pf.mark(s, m)
        sym, px, sz = r["symbol"], r["px"], r["sz"]
        before = pf.position(sym)
        signed = sz if r["side"] == "BUY" else -sz
        after = before + signed
        pf.on_fill(Fill(t, t, sym, r["cloid"], 0, Side.BUY if signed > 0 else Side.SELL, px, sz, r["fee"],
                        r["liquidity"]))
        if abs(after) <= abs(before) + 1e-12:  # reduced: a price move may have put it over, fine
            continue
        checked += 1
        notional = abs(after) * px
        story = [(x["kind"], x["ts_exch"], x.get("agent"), x.get("cloid", "")[:8], x.get("side"),
                  x.get("size", x.get("sz")), x.get("px"), x.get("tif"), x.get("reduce_only"),
                  x.get("trigger_px"), x.get("order_size"), x.get("status"))
                 for x in recs if x["kind"] in ("OrderRequest", "Fill", "RiskDecision", "CancelRequest", "CancelAck")
                 and x.get("symbol") == sym and t - 3 * BAR <= x["ts_exch"] <= t]
        assert notional <= risk.max_notional_per_symbol * (1 + TOL), (
            f"fill at {t} left {sym} at {notional:.2f} > max_notional_per_symbol {risk.max_notional_per_symbol:.2f}"
            f" (position {before:+.6g} -> {after:+.6g}); last bars: {story}")
        if orders.get(r["cloid"]) == t:  # decided and filled at the same instant
            gross = notional + sum(abs(pf.position(s)) * marks.get(s, 0.0) for s in pf.positions if s != sym)
            assert gross <= risk.max_gross_exposure * (1 + TOL), (
                f"gross {gross:.2f} > {risk.max_gross_exposure:.2f} at {t}: {sym} {after:+.6g} @ {px}, "
                f"others {[(s, pf.position(s), marks.get(s)) for s in pf.positions if s != sym]}; last bars: {story}")
            pf.mark(sym, px)
            eq = pf.equity()
            assert gross <= risk.max_leverage * eq * (1 + TOL) + 1e-6, (
                f"leverage {gross / eq:.4f} > {risk.max_leverage:.4f} at {t}")
    return checked


def check_order_rate(res, risk: RiskConfig) -> None:
    ts = sorted(r["ts_exch"] for r in payloads(res.audit.frame()) if r["kind"] == "OrderRequest")
    for i in range(len(ts)):
        for j in range(i, len(ts)):
            window_s = (ts[j] - ts[i]) / 1000.0
            assert j - i + 1 <= risk.order_burst + risk.max_orders_per_s * window_s + 1e-9, (
                f"{j - i + 1} orders in {window_s:.0f} s > burst {risk.order_burst} + "
                f"{risk.max_orders_per_s}/s")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_limits_hold_at_every_fill(sc):
    market, agents, risk, router = sc
    res = Backtest(market, agents, risk=risk, router=router, staleness={"default": 10 * BAR}).run()
    check_fills(res, risk, market)
    check_order_rate(res, risk)


def test_the_property_bites_on_a_known_case():
    """A single agent asking for 10x the limit with gaps in the price: limits bind and hold."""
    steps = [0.0, 0.08, -0.1, 0.12, 0.0, -0.05, 0.09, 0.0] * 6
    market = market_from({"BTC": price_path(START["BTC"], steps)})
    script = [("target", 200_000.0 * (1 if i % 2 else -1)) for i in range(len(steps))]
    risk = RiskConfig(max_notional_per_symbol=20_000, max_gross_exposure=40_000, max_leverage=0.3,
                      max_order_notional=50_000, max_drawdown=1.0, max_price_age_ms=10 * BAR)
    res = Backtest(market, [Scripted(AgentConfig("a", ("BTC",), heartbeat_ttl_ms=10**9,
                                                 params={"script": script}))],
                   risk=risk, staleness={"default": 10 * BAR}).run()
    assert check_fills(res, risk, market) >= 5


def test_limits_hold_in_a_paper_session_against_the_fake_exchange(tmp_path):
    """Two random-flip agents asking for far more than the limits allow, on live data from
    the fake exchange: every fill that adds exposure stays within max_notional_per_symbol at
    its own price, and the order rate within its bucket (event time is wall time here)."""
    import asyncio

    from hlquant.config.compose import load_config
    from hlquant.connectors.replay import ReplayConnector
    from hlquant.data.loaders import load_sample
    from hlquant.fakeexchange.testing import running_fake_exchange
    from hlquant.live.session import run_session

    md = load_sample()
    t0 = int(md.span()[0])
    md = md.select(start=t0, end=t0 + 6 * 3_600_000)
    overrides = ["strategy=drill", "strategy.size_usd=90000", "risk.max_notional_per_symbol=20000",
                 "risk.max_gross_exposure=40000", "risk.max_leverage=0.3", "risk.max_price_age_ms=5000"]
    with running_fake_exchange() as fx:
        cfg = load_config([*overrides, "mode=paper", f"live.url={fx.url}"])
        fut = fx.replay(iter(ReplayConnector(md)), speed=3600.0)
        res = asyncio.run(run_session(cfg, "paper", out_dir=tmp_path, duration_s=6.0))
        fut.cancel()
    risk = res.engine.risk.config
    recs = payloads(res.engine.audit.frame())
    pos: dict[str, float] = {}
    added = 0
    for r in (x for x in recs if x["kind"] == "Fill"):
        before = pos.get(r["symbol"], 0.0)
        after = before + (r["sz"] if r["side"] == "BUY" else -r["sz"])
        pos[r["symbol"]] = after
        if abs(after) > abs(before) + 1e-12:
            added += 1
            assert abs(after) * r["px"] <= risk.max_notional_per_symbol * (1 + TOL), r
    assert added > 5, "the session must trade"
    ts = sorted(r["ts_exch"] for r in recs if r["kind"] == "OrderRequest")
    for i in range(len(ts)):
        for j in range(i, len(ts)):
            assert j - i + 1 <= risk.order_burst + risk.max_orders_per_s * (ts[j] - ts[i]) / 1000.0 + 1e-9
