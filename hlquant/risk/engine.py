"""RiskEngine: the one gate between agents and the router.

Target intents of several agents on one symbol are *netted* (summed) from the
Blackboard, so momentum saying +1 and mean reversion saying -0.6 produce one
order towards +0.4, not two opposing orders paying two fees. The resulting
order is checked against kill switch, price staleness, per-symbol notional,
gross exposure, leverage, order size bounds and an order-rate token bucket;
limits clip the order (or reject it, per config), and orders that reduce risk
always pass. Agents whose heartbeat expired lose their intents and their open
orders. Every decision is audited with its reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hlquant.agents.blackboard import Blackboard, HeartbeatStore
from hlquant.audit.log import AuditLog
from hlquant.core.clock import Clock
from hlquant.core.events import HeartbeatLoss, Intent, KillSwitch, RiskCode, RiskDecision, Side, Tif
from hlquant.core.ratelimit import TokenBucket
from hlquant.portfolio.portfolio import Portfolio
from hlquant.router.router import OrderRouter


@dataclass(frozen=True)
class RiskConfig:
    """Risk limits (USD unless stated).

    - max_notional_per_symbol (50_000): cap on |position| x price per symbol.
    - max_gross_exposure (150_000): cap on the sum of |position notional|.
    - max_leverage (3.0): cap on gross exposure / equity.
    - min_order_notional (10.0): smaller deltas are not sent (Hyperliquid's minimum is $10).
    - fee_rate_bound (0.0005): the highest fee rate an order may pay, taken off equity before
      the leverage limit (Hyperliquid's base taker fee is 0.045%).
    - max_order_notional (50_000): one order's notional is clipped to this.
    - max_orders_per_s (5.0) / order_burst (20): order-rate token bucket (event time).
    - max_price_age_ms (500): an order needs a price no older than this.
    - max_drawdown (0.5): drawdown from peak equity that trips the kill switch.
    - clip (True): clip orders to the limits (True) or reject them (False).
    - kill_switch (False): start with trading halted.
    - rules ([]): extra checks, ``"module:function"`` paths; each is called as
      ``rule(RuleContext) -> str | None`` and a returned string rejects the order
      with that reason (see docs/risk.md).
    """

    max_notional_per_symbol: float = 50_000.0
    max_gross_exposure: float = 150_000.0
    max_leverage: float = 3.0
    min_order_notional: float = 10.0
    fee_rate_bound: float = 0.0005
    max_order_notional: float = 50_000.0
    max_orders_per_s: float = 5.0
    order_burst: int = 20
    max_price_age_ms: int = 500
    max_drawdown: float = 0.5
    clip: bool = True
    kill_switch: bool = False
    rules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("max_notional_per_symbol", "max_gross_exposure", "max_leverage",
                     "max_order_notional", "max_orders_per_s"):
            v = getattr(self, name)
            if not (v > 0 and math.isfinite(v)):
                raise ValueError(f"risk.{name} must be a positive finite number, got {v!r}")
        if not 0 < self.max_drawdown <= 1:
            raise ValueError(f"risk.max_drawdown must be in (0, 1], got {self.max_drawdown}")
        if not (self.min_order_notional >= 0 and math.isfinite(self.min_order_notional)):
            raise ValueError(f"risk.min_order_notional must be a finite number >= 0, got {self.min_order_notional!r}")
        if self.max_order_notional < self.min_order_notional:  # every order would be refused
            raise ValueError(f"risk.max_order_notional must be >= risk.min_order_notional "
                             f"({self.min_order_notional!r}), got {self.max_order_notional!r}")
        if not 0 <= self.fee_rate_bound < 0.1:
            raise ValueError(f"risk.fee_rate_bound must be in [0, 0.1), got {self.fee_rate_bound!r}")
        if self.order_burst < 1:
            raise ValueError(f"risk.order_burst must be >= 1 (orders), got {self.order_burst!r}")
        if self.max_price_age_ms < 0:
            raise ValueError(f"risk.max_price_age_ms must be >= 0, got {self.max_price_age_ms!r}")
        object.__setattr__(self, "rules", tuple(self.rules or ()))


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What a custom risk rule sees for one order about to be sent."""

    intent: Intent
    symbol: str
    current: float  # position + pending, coins
    delta: float  # the order, signed coins
    price: float
    now: int
    equity: float
    engine: RiskEngine


def load_rules(paths: tuple[str, ...]) -> list[Callable[[RuleContext], str | None]]:
    import importlib

    out = []
    for path in paths:
        mod, _, name = path.partition(":")
        try:
            fn = getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError, ValueError) as e:
            raise ValueError(f"risk.rules: cannot import {path!r}: {e}") from None
        out.append(fn)
    return out


def _worst_side(pos: float, buys: float, sells: float, ro_buys: float, ro_sells: float) -> tuple[float, float]:
    """(long, short) exposure in coins if every open order on that side fills and none on
    the other does -- except reduce-only ones, which may take away the position that
    offsets it (they fill first in the worst case)."""
    long_ = buys + (pos if pos > 0 else -max(-pos - ro_buys, 0.0))
    short = sells + (-pos if pos < 0 else -max(pos - ro_sells, 0.0))
    return long_, short


def invalid_intent(it: Intent, assets: Mapping[str, object]) -> str:
    """Why an intent is not an order at all ("" if it is): unknown symbol, side or tif,
    size <= 0, a number that is not finite, a price <= 0. Intents reach the risk
    engine from agents in other processes too, so this holds whatever Context did."""
    if it.symbol not in assets:
        return f"unknown symbol {it.symbol!r}"
    if it.is_target:
        return "" if isinstance(it.target, (int, float)) and math.isfinite(it.target) else \
            f"target {it.target!r} is not a finite number"
    if not isinstance(it.side, Side):
        return f"unknown side {it.side!r}"
    if not isinstance(it.tif, Tif):
        return f"unknown tif {it.tif!r}"
    for name in ("size", "px", "trigger_px"):
        v = getattr(it, name)
        if v is None and name != "size":
            continue
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            return f"{name} {v!r} must be a finite number > 0"
    if it.tpsl not in (None, "tp", "sl"):
        return f"tpsl {it.tpsl!r} must be tp, sl or empty"
    return ""


class RiskEngine:
    def __init__(
        self,
        config: RiskConfig,
        blackboard: Blackboard,
        heartbeats: HeartbeatStore,
        portfolio: Portfolio,
        router: OrderRouter,
        audit: AuditLog,
        clock: Clock,
    ) -> None:
        self.config = config
        self.bb = blackboard
        self.hb = heartbeats
        self.portfolio = portfolio
        self.router = router
        self.audit = audit
        self.clock = clock
        self.bucket = TokenBucket(config.max_orders_per_s, config.order_burst, clock.now_ms())
        self.killed = config.kill_switch
        self.kill_reason = "configured" if config.kill_switch else ""
        self.prices: dict[str, tuple[float, int]] = {}
        self.dirty: set[str] = set()
        self.agents: set[str] = set()
        self.dead: set[str] = set()
        self.peak_equity = portfolio.equity()
        self.counts: dict[str, int] = {}
        self._renets = 0
        self.rules = load_rules(config.rules)

    # --- inputs ------------------------------------------------------------
    def register_agent(self, name: str) -> None:
        self.agents.add(name)

    def on_price(self, symbol: str, px: float, ts: int) -> None:
        """Latest price; re-nets a symbol left dirty by a deferred or lost decision."""
        self.prices[symbol] = (px, ts)
        if symbol in self.dirty:
            self.dirty.discard(symbol)
            self._renet(symbol, ts)

    def _renet(self, symbol: str, now: int) -> RiskDecision:
        """Re-evaluate a symbol without a new intent (after a deferral or a lost agent).
        The decision gets its own id, attributed to the risk engine."""
        self._renets += 1
        it = Intent(now, now, f"risk:{symbol}:{now}:{self._renets}", "risk", symbol, target=0.0,
                    reason="re-net")
        return self._net(symbol, it)

    def kill(self, reason: str) -> None:
        if not self.killed:
            self.killed, self.kill_reason = True, reason
            now = self.clock.now_ms()
            self.audit.record(KillSwitch(now, now, reason))

    def on_equity(self, equity: float) -> None:
        if equity > self.peak_equity:
            self.peak_equity = equity
        elif self.peak_equity > 0 and 1 - equity / self.peak_equity >= self.config.max_drawdown:
            self.kill(f"max_drawdown {self.config.max_drawdown:.0%} reached")

    def on_intent(self, intent: Intent) -> RiskDecision:
        """Entry point for a new intent (already posted on the Blackboard)."""
        self.agents.add(intent.agent)
        bad = invalid_intent(intent, self.router.assets)
        if bad:
            return self._decide(intent, RiskCode.INVALID_INTENT, f"invalid intent: {bad}")
        if intent.agent in self.dead:
            return self._decide(intent, RiskCode.AGENT_DEAD, "agent heartbeat expired or quarantined")
        if intent.is_target:
            return self._net(intent.symbol, intent)
        return self._explicit(intent)

    # --- decisions ---------------------------------------------------------
    def _decide(self, intent: Intent, code: RiskCode, reason: str, size: float = 0.0,
                limit: str = "") -> RiskDecision:
        now = self.clock.now_ms()
        d = RiskDecision(now, now, intent.intent_id, intent.agent, intent.symbol, code is RiskCode.APPROVED,
                         reason, size, code, limit)
        self.counts[code.name] = self.counts.get(code.name, 0) + 1
        self.audit.record(d)
        return d

    def _fresh_price(self, symbol: str) -> float | None:
        rec = self.prices.get(symbol)
        if rec is None or self.clock.now_ms() - rec[1] > self.config.max_price_age_ms:
            return None
        return rec[0]

    def _net(self, symbol: str, intent: Intent) -> RiskDecision:
        intents = self.bb.intents(symbol)
        targets = [it.target for a, it in intents.items() if it.is_target and a not in self.dead]
        net = float(sum(targets)) if targets else 0.0
        current = self.portfolio.position(symbol) + self.router.pending(symbol)
        reason = f"netted {len(targets)} agent(s) to {net:+.6g}" if len(targets) > 1 else "target"
        return self._check_and_send(intent, symbol, current, net - current, reason)

    def _explicit(self, intent: Intent) -> RiskDecision:
        current = self.portfolio.position(intent.symbol) + self.router.pending(intent.symbol)
        delta = intent.size * int(intent.side)
        if intent.trigger_px is not None:  # a tp/sl only acts later; check it as reduce/add then
            current_after = current
        else:
            current_after = current + delta
        if intent.reduce_only and abs(current_after) > abs(current) + 1e-12 and intent.trigger_px is None:
            return self._decide(intent, RiskCode.REDUCE_ONLY_INCREASES, "reduce-only order would increase position")
        return self._check_and_send(intent, intent.symbol, current, delta, "order", explicit=True)

    def _worst_px(self, symbol: str, side: int, ref: float, intent: Intent, explicit: bool,
                  reduce_only: bool) -> tuple[float | None, float]:
        """(limit price of the order to send, highest price it can fill at). A buy fills at
        its limit or lower. A sell fills at its limit or higher, but a taker sell fills at
        the bid, which a fresh reference price (max_price_age_ms) plus the market cap bounds;
        a resting sell fills at its own price."""
        px, trig = (intent.px, intent.trigger_px) if explicit else (None, None)
        if trig is not None:
            trig = self.router.assets[symbol].round_price(trig)  # as the router will send it
        lim, tif = self.router.limit_price(symbol, side, ref, px, intent.tif if px is not None else None,
                                           trig, reduce_only)
        base = trig if trig is not None else ref
        cap = self.router.config.market_slippage_cap
        if side > 0 or (tif == Tif.ALO and lim is not None):  # post-only: fills at its own price
            return lim, lim if lim is not None else base * (1 + cap)
        return lim, max(lim or 0.0, base * (1 + cap))

    def _room(self, symbol: str, side: int, px_hi: float, ref: float, lim: float | None,
              want: float) -> tuple[float, str, float]:
        """How much of an order of ``want`` coins on ``side`` the limits allow, and the
        binding limit. Worst case: the order and every open order on its side fill, none on
        the other side does, at the highest price this order can fill at; other symbols at
        their marks with their open orders filled; equity after this order's worst slippage
        and fee. Returns (allowed coins, binding limit, exposure before in coins)."""
        cfg = self.config
        # the position's notional is measured at the last fill: the highest price any order
        # that can add to this side may fill at
        px_hi = max(px_hi, self.router.pending_px_max(symbol, side))
        before = _worst_side(self.portfolio.position(symbol), *self.router.pending_sides(symbol))[
            0 if side > 0 else 1]  # worst exposure on this side in coins, signed (< 0: the other side)
        others = 0.0
        for s in set(self.portfolio.positions) | set(self.router.symbols_open()):
            if s == symbol:
                continue
            long_, short = _worst_side(self.portfolio.position(s), *self.router.pending_sides(s))
            others += max(long_, short, 0.0) * self.portfolio.marks.get(s, 0.0)
        worst_fill = lim if lim is not None else px_hi
        cost = want * (abs(worst_fill - ref) + px_hi * cfg.fee_rate_bound)
        equity = max(self.portfolio.equity() - cost, 0.0)
        caps = {
            "max_notional_per_symbol": cfg.max_notional_per_symbol / px_hi,
            "max_gross_exposure": (cfg.max_gross_exposure - others) / px_hi,
            "max_leverage": (cfg.max_leverage * equity - others) / px_hi,
        }
        name, cap = min(caps.items(), key=lambda kv: kv[1])
        allowed = max(cap, max(before, 0.0)) - before  # past a limit already: only the reducing part
        return max(allowed, 0.0), name, before

    def _check_and_send(
        self,
        intent: Intent,
        symbol: str,
        current: float,
        delta: float,
        reason: str,
        explicit: bool = False,
    ) -> RiskDecision:
        cfg = self.config
        if self.killed:
            return self._decide(intent, RiskCode.KILL_SWITCH, f"kill switch: {self.kill_reason}")
        ref = self._fresh_price(symbol)
        if ref is None:
            self.dirty.add(symbol)
            return self._decide(intent, RiskCode.STALE_PRICE, "stale price: no price within max_price_age_ms")
        if abs(delta) * ref < max(cfg.min_order_notional, 1e-12):
            return self._decide(intent, RiskCode.BELOW_MIN_NOTIONAL,
                                f"no-op: {reason}, change below min order notional")
        side = 1 if delta > 0 else -1
        reduce_only = abs(current + delta) <= abs(current) + 1e-12 and (current + delta) * current >= 0
        reduce_only = reduce_only or (explicit and intent.reduce_only)
        lim, px_hi = self._worst_px(symbol, side, ref, intent, explicit, reduce_only)
        notes = [reason]
        binding = ""
        want = abs(delta)
        if not (explicit and intent.reduce_only):  # a reduce-only order can never add exposure
            allowed, lim_name, before = self._room(symbol, side, px_hi, ref, lim, want)
            if want > allowed + 1e-12 and before + want > max(before, 0.0) + 1e-12:
                if not cfg.clip:
                    return self._decide(intent, RiskCode.LIMIT, f"limit {lim_name}: {want:.6g} > {allowed:.6g} "
                                        f"at a worst fill of {px_hi:.6g}", limit=lim_name)
                want = allowed
                notes.append(f"clipped by {lim_name}")
                binding = lim_name
                if want * ref < cfg.min_order_notional:
                    return self._decide(intent, RiskCode.NO_ROOM, f"limit {lim_name}: no room", limit=lim_name)
        if want * px_hi > cfg.max_order_notional:
            want = cfg.max_order_notional / px_hi
            notes.append("clipped by max_order_notional")
            binding = binding or "max_order_notional"
            if not explicit:
                self.dirty.add(symbol)  # finish the move on a later price
        delta = side * want
        for rule in self.rules:
            why = rule(RuleContext(intent, symbol, current, delta, ref, self.clock.now_ms(),
                                   self.portfolio.equity(), self))
            if why:
                name = getattr(rule, "__name__", "rule")
                return self._decide(intent, RiskCode.RULE, f"rule {name}: {why}", limit=name)
        if not self.bucket.take(1, self.clock.now_ms()):
            self.dirty.add(symbol)
            return self._decide(intent, RiskCode.RATE_LIMIT, "order rate limit")
        if explicit:
            req = self.router.order_for(
                intent.intent_id, intent.agent, symbol, delta, ref, reduce_only,
                px=intent.px, tif=intent.tif if intent.px is not None else None,
                trigger_px=intent.trigger_px, tpsl=intent.tpsl,
            )
        else:
            # a netted target is not sent reduce-only: "reducing" is judged against position +
            # pending orders, which the exchange does not see yet; the limits above still bind
            req = self.router.order_for(intent.intent_id, intent.agent, symbol, delta, ref, False)
        if req is None:
            return self._decide(intent, RiskCode.ROUNDS_TO_ZERO, "no-op: size rounds to zero lot")
        d = self._decide(intent, RiskCode.APPROVED, "; ".join(notes), float(req.size * int(req.side)),
                         binding)
        self.router.send(req, mergeable=not explicit)
        if req.reduce_only:
            self._fit_side(symbol, int(req.side), ref)
        return d

    def _fit_side(self, symbol: str, side: int, ref: float) -> None:
        """A reduce-only order may fill first and take away the position that offset open
        orders on its own side (a reduce-only sell closes the long that a pending sell was
        partly closing); if their worst case now exceeds the per-symbol limit, the newest of
        them are cancelled until it fits."""
        long_, short = _worst_side(self.portfolio.position(symbol), *self.router.pending_sides(symbol))
        worst = long_ if side > 0 else short
        cap = self.router.config.market_slippage_cap
        open_ = sorted((o for o in self.router.open.values() if o.req.symbol == symbol and
                        not o.req.reduce_only and int(o.req.side) == side), key=lambda o: o.req.ts_exch)
        px_hi = max([o.req.px or 0.0 for o in open_] + [ref * (1 + cap)])
        limit = self.config.max_notional_per_symbol / px_hi
        while worst > limit + 1e-12 and open_:
            o = open_.pop()
            self.router.cancel(o.req.cloid, "risk: reduce-only order would leave it past max_notional_per_symbol")
            worst -= o.remaining

    # --- heartbeats ----------------------------------------------------------
    def check_heartbeats(self, now: int) -> list[HeartbeatLoss]:
        """Cancel intents and open orders of agents whose heartbeat expired."""
        return [self.retire(agent, now) for agent in sorted(self.agents - self.dead)
                if not self.hb.alive(agent, now)]

    def retire(self, agent: str, now: int | None = None, reason: str = "heartbeat lost") -> HeartbeatLoss:
        """Take an agent out of trading (lost heartbeat, quarantine): its intents leave
        the Blackboard, its open orders are cancelled, its symbols are re-netted."""
        now = self.clock.now_ms() if now is None else now
        self.dead.add(agent)
        removed = self.bb.remove_agent(agent)
        orders = self.router.cancel_agent(agent, reason)
        ev = HeartbeatLoss(now, now, agent, self.hb.last_seen(agent) or 0,
                           [it.intent_id for it in removed], orders)
        self.audit.record(ev)
        for it in removed:
            if it.is_target:
                self.dirty.add(it.symbol)
        return ev

    def revive(self, agent: str) -> None:
        """An agent that beats again after being declared dead (restarted) may trade again."""
        self.dead.discard(agent)
