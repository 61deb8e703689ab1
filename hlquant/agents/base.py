"""The agent API: the one page a strategy author reads.

A strategy subclasses :class:`Agent` and implements ``decide(ctx)``, returning
``ctx.target(size)`` (a target position in coin units), ``ctx.order(...)`` (an
explicit order) or ``None``. It never imports a backend: features, positions,
prices, the clock and its parameters all come through :class:`Context`, so
the same file runs in a notebook, a backtest, paper and live trading.

Debounce and heartbeat intervals are configuration (``AgentConfig``), not
code in each strategy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from hlquant.core.errors import HlquantError, IntentError, StaleFeatureError, UnknownFeatureError
from hlquant.core.events import GLOBAL_SERIES, Intent, OrderView, Side, Tif
from hlquant.core.ids import intent_id


@dataclass(frozen=True)
class AgentConfig:
    """Per-agent settings.

    - name: unique agent name (also its Blackboard field and heartbeat key).
    - symbols: symbols the agent trades; ``decide`` is called once per trigger per symbol.
    - trigger: which market events call ``decide``: ``candle`` (default), ``trade``,
      ``l2`` or ``funding``.
    - debounce_ms (0): minimum event-time between two published intents of this agent
      on one symbol; intents inside the window are dropped and counted.
    - heartbeat_ms (60_000): heartbeat interval while the agent is alive.
    - heartbeat_ttl_ms (180_000): a heartbeat older than this means the agent is dead:
      the risk engine cancels its intents and the router its orders.
    - params: strategy parameters, readable as ``ctx.params`` / ``self.params``.
    """

    name: str
    symbols: tuple[str, ...]
    trigger: str = "candle"
    debounce_ms: int = 0
    heartbeat_ms: int = 60_000
    heartbeat_ttl_ms: int = 180_000
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.trigger not in ("candle", "trade", "l2", "funding"):
            raise ValueError(f"agent {self.name}: unknown trigger {self.trigger!r}")
        if self.heartbeat_ttl_ms < self.heartbeat_ms:
            raise ValueError(
                f"agent {self.name}: heartbeat_ttl_ms ({self.heartbeat_ttl_ms}) must be >= "
                f"heartbeat_ms ({self.heartbeat_ms})"
            )
        if not self.symbols:
            raise ValueError(f"agent {self.name}: needs at least one symbol")


class Context:
    """What ``decide`` sees. One instance per agent, reused across calls (no
    per-event allocation); the runner sets ``now`` and ``symbol`` before each call."""

    __slots__ = (
        "agent", "now", "symbol", "params", "_features", "_account", "_seq", "_prices", "_alias",
        "_declared",
    )

    def __init__(
        self,
        agent: Agent,
        features: Any,
        account: Any,
        prices: Any,
        alias: Mapping[str, str] | None = None,
        declared: frozenset[str] | None = None,
    ) -> None:
        """``declared``: the feature names any agent of the run declares (default: this
        agent's own); reading another name is an error."""
        self.agent = agent
        self._alias = dict(alias or {})
        self.params = agent.params
        self.now = 0
        self.symbol = ""
        self._features = features
        self._account = account
        self._prices = prices
        self._seq = 0
        self._declared = declared if declared is not None else frozenset(
            s["name"] for s in agent.feature_specs())

    # --- reads -------------------------------------------------------------
    def feature(self, name: str, symbol: str | None = None) -> float:
        """Latest value of a feature; raises ``StaleFeatureError`` when too old.
        The runner catches that and skips the decision (counted), so a strategy
        never acts on stale data by accident. A name the agent did not declare
        is an error (``UnknownFeatureError``), not a silently empty series."""
        if name not in self._declared:
            raise UnknownFeatureError(
                f"agent {self.agent.name} read feature {name!r}, which no agent declares; "
                f"declared: {sorted(self._declared) or 'none'}")
        return self._features.get(symbol or self.symbol, self._alias.get(name, name), self.now)

    def bars(self, n: int | None = None, symbol: str | None = None) -> Any:
        """The last ``n`` closed candles of ``symbol`` (default: the agent's ``history``) as
        arrays, oldest first: ``.ts`` (close times), ``.open``, ``.high``, ``.low``,
        ``.close``, ``.volume``. The last row is the latest candle closed at ``ctx.now``
        (never one still forming). ``n`` may not exceed the agent's ``history``, which
        also delays the first ``decide`` until that many candles exist."""
        depth = int(self.agent.history)
        n = depth if n is None else int(n)
        if not 0 < n <= depth:
            raise UnknownFeatureError(
                f"agent {self.agent.name} read {n} bars but declares history = {depth}; "
                f"set `history = {max(n, 1)}` on {type(self.agent).__name__}")
        source = getattr(self._features, "bars", None)
        if source is None:
            raise HlquantError("bar history is served in backtests and single-process paper/live; "
                               "with live.topology=processes read features instead")
        return source(symbol or self.symbol, n)

    def signal(self, name: str, symbol: str | None = None) -> float:
        """Latest value of an external series (a connector's ``Signal``: sentiment, the
        exchange's open interest...) for ``symbol`` (default: the current one), or of the
        market-wide series of that name when the symbol has none. Staleness rules apply
        as for features (``sentiment*``: 5 minutes by default), measured from the
        source's time of the observation. The agent declares what it reads
        (``signals = ("sentiment",)``); another name is an error."""
        if name not in self.agent.signals:
            raise UnknownFeatureError(
                f"agent {self.agent.name} read signal {name!r}, which it does not declare; "
                f"declared: {sorted(self.agent.signals) or 'none'} (Agent.signals)")
        store = self._features
        sym = symbol or self.symbol
        if store.get_with_ts(sym, name) is None and store.get_with_ts(GLOBAL_SERIES, name) is not None:
            sym = GLOBAL_SERIES
        return store.get(sym, name, self.now)

    def position(self, symbol: str | None = None) -> float:
        """Signed position of the account in coin units (all agents together)."""
        return self._account.position(symbol or self.symbol, self.now)

    def entry_price(self, symbol: str | None = None) -> float:
        """Average entry price of the account's open position (0 when flat)."""
        return self._account.entry_price(symbol or self.symbol, self.now)

    def open_orders(self, symbol: str | None = None) -> list[OrderView]:
        """The account's open orders on ``symbol`` (default: the current one)."""
        return self._account.open_orders(symbol or self.symbol, self.now)

    def price(self, symbol: str | None = None) -> float:
        """Last traded / mark price known to the portfolio."""
        return self._prices(symbol or self.symbol)

    @property
    def equity(self) -> float:
        return self._account.equity(self.now)

    # --- intents -----------------------------------------------------------
    def _next_id(self, symbol: str) -> str:
        self._seq += 1
        return intent_id(self.agent.name, symbol, self._seq, self.now)

    def target(self, size: float, symbol: str | None = None, reason: str = "") -> Intent:
        """Intent: hold ``size`` coins (signed) of ``symbol``; risk nets it with other agents."""
        sym = symbol or self.symbol
        size = _finite(size, "target size")
        return Intent(
            self.now, self.now, self._next_id(sym), self.agent.name, sym, target=size,
            reason=reason,
        )

    def target_notional(self, usd: float, symbol: str | None = None, reason: str = "") -> Intent:
        """Target position expressed in USD at the current price."""
        sym = symbol or self.symbol
        return self.target(usd / self.price(sym), sym, reason)

    def order(
        self,
        side: Side | str,
        size: float,
        px: float | None = None,
        tif: Tif | str = Tif.GTC,
        reduce_only: bool = False,
        trigger_px: float | None = None,
        tpsl: str | None = None,
        symbol: str | None = None,
        reason: str = "",
    ) -> Intent:
        """Intent: an explicit order (limit, market with px=None, or tp/sl trigger).
        Anything that is not an order raises ``IntentError``: an unknown side or tif,
        a size <= 0, a price or trigger <= 0, a number that is not finite."""
        sym = symbol or self.symbol
        side = parse_side(side)
        tif = parse_tif(tif)
        size = _positive(size, "size")
        px = None if px is None else _positive(px, "px")
        trigger_px = None if trigger_px is None else _positive(trigger_px, "trigger_px")
        if tpsl not in (None, "tp", "sl"):
            raise IntentError(f"tpsl must be 'tp', 'sl' or None, got {tpsl!r}")
        return Intent(
            self.now, self.now, self._next_id(sym), self.agent.name, sym, side=side,
            size=size, px=px, tif=tif, reduce_only=bool(reduce_only), trigger_px=trigger_px,
            tpsl=tpsl, reason=reason,
        )


class SymbolContext(Context):
    """A context bound to one symbol, for ``decide_batch``: one per symbol of the batch.
    Intent ids continue the agent's own sequence (``main``), so a batch produces the
    same ids as one ``decide`` call per symbol in the same order. ``stale`` marks a
    context left out of a batch because one of its inputs was stale."""

    __slots__ = ("_main", "stale")

    @classmethod
    def of(cls, main: Context, symbol: str) -> SymbolContext:
        c = cls.__new__(cls)
        for k in (s for klass in type(main).__mro__ for s in getattr(klass, "__slots__", ())):
            setattr(c, k, getattr(main, k))
        c._main = main
        c.symbol = symbol
        c.stale = False
        return c

    def _next_id(self, symbol: str) -> str:
        m = self._main
        m._seq += 1
        return intent_id(self.agent.name, symbol, m._seq, self.now)


_SIDES = {"b": Side.BUY, "buy": Side.BUY, "long": Side.BUY,
          "a": Side.SELL, "s": Side.SELL, "sell": Side.SELL, "short": Side.SELL}


def parse_side(side: Side | str) -> Side:
    """A Side from a Side or its common names; anything else is an ``IntentError``."""
    if isinstance(side, Side):
        return side
    if isinstance(side, str) and side.lower() in _SIDES:
        return _SIDES[side.lower()]
    raise IntentError(f"unknown side {side!r}: use buy/sell (or Side.BUY/Side.SELL)")


def parse_tif(tif: Tif | str) -> Tif:
    if isinstance(tif, Tif):
        return tif
    if isinstance(tif, str):
        try:
            return Tif.from_wire(tif.capitalize())
        except ValueError:
            pass
    raise IntentError(f"unknown tif {tif!r}: use Gtc, Ioc or Alo")


def _finite(x: Any, what: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise IntentError(f"{what} must be a number, got {x!r}") from None
    if not math.isfinite(v):
        raise IntentError(f"{what} must be finite, got {v}")
    return v


def _positive(x: Any, what: str) -> float:
    v = _finite(x, what)
    if v <= 0:
        raise IntentError(f"{what} must be > 0, got {v}")
    return v


HISTORY_FEATURE = "_history"
"""Name of the feature ``Agent.history`` declares (the number of candles seen)."""


class Agent:
    """Subclass and implement ``decide``. Optionally declare the features it reads
    (``features``: list of feature spec dicts, see docs/agents.md), defaults for its
    parameters (``defaults``: their types are checked when a config is built) and how
    many past candles ``ctx.bars()`` may return (``history``).

    Warm-up is the framework's: ``decide`` is first called once every declared
    feature has seen its warm-up (its span or window) for that symbol, and, with
    ``history = N``, once N candles of the symbol have closed."""

    features: ClassVar[Sequence[Mapping[str, Any]]] = ()
    signals: ClassVar[Sequence[str]] = ()  # external series it reads (ctx.signal)
    defaults: ClassVar[Mapping[str, Any]] = {}
    signed_params: ClassVar[Sequence[str]] = ()
    """Parameters with a positive default that may still be set negative; every other one
    is refused below 0 or non-finite when the config is built (a negative size flips sides)."""
    history: ClassVar[int] = 0

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.name = config.name
        self.symbols = tuple(config.symbols)
        self.params: dict[str, Any] = {**self.defaults, **dict(config.params)}
        self.alive = True

    def feature_specs(self) -> list[dict[str, Any]]:
        """Feature specs with ``{param}`` placeholders filled from ``params``,
        so ``span: "{fast}"`` follows a sweep over ``fast``."""
        out = []
        for spec in self.features:
            d = {}
            for k, v in spec.items():
                if isinstance(v, str) and v.startswith("{") and v.endswith("}"):
                    v = self.params[v[1:-1]]
                elif isinstance(v, Mapping):
                    v = {
                        kk: (
                            self.params[vv[1:-1]]
                            if isinstance(vv, str) and vv.startswith("{") and vv.endswith("}")
                            else vv
                        )
                        for kk, vv in v.items()
                    }
                d[k] = v
            out.append(d)
        if self.history:
            out.append({"name": HISTORY_FEATURE, "kind": "history", "input": "candle.close",
                        "params": {"length": int(self.history)}})
        return out

    def setup(self, ctx: Context) -> None:
        """Called once before the first event (optional)."""

    def decide(self, ctx: Context) -> Intent | None:
        raise NotImplementedError(f"{type(self).__name__} must implement decide(ctx)")

    def decide_batch(self, ctxs: Sequence[Context]) -> Sequence[Intent | None]:
        """Decide for every symbol that fired at one trigger time in one call (one model
        call scores them all): return one entry per context, in order (an Intent or
        None). Implement this *instead of* ``decide`` and the runner calls it once per
        trigger time with the contexts of all the agent's symbols that fired; debounce
        still applies per symbol. ``batch_inputs`` gathers the inputs and leaves out the
        symbols with a stale one. Default: ``decide`` for each context."""
        return [self.decide(c) for c in ctxs]

    @property
    def batched(self) -> bool:
        """True when the agent implements ``decide_batch``."""
        return type(self).decide_batch is not Agent.decide_batch

    @staticmethod
    def batch_inputs(ctxs: Sequence[Context], features: Sequence[str] = (), signals: Sequence[str] = ()
                     ) -> tuple[list[Context], np.ndarray]:
        """``(fresh, X)``: the contexts whose inputs are all fresh and their inputs as the
        rows of a float matrix (features then signals, in the order given). A context with
        a stale input is marked (``ctx.stale``) and left out; the runner counts it as a
        decision skipped on stale data, exactly like a ``decide`` that raised."""
        fresh: list[Context] = []
        rows: list[list[float]] = []
        for c in ctxs:
            try:
                row = [c.feature(n) for n in features] + [c.signal(n) for n in signals]
            except StaleFeatureError:
                c.stale = True  # type: ignore[attr-defined]  (SymbolContext)
                continue
            fresh.append(c)
            rows.append(row)
        width = len(features) + len(signals)
        return fresh, (np.array(rows, dtype=np.float64) if rows else np.zeros((0, width)))
