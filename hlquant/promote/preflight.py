"""Pre-flight check before a strategy trades real money.

``hlquant live`` refuses to start unless every check passes:

1. *risk config*: the ``risk`` group is present, complete and within the
   bounds below (no leverage above what the assets allow, a drawdown kill
   level below 100%, an order rate under the exchange's limits, min order at
   least the exchange's $10, the kill switch not already engaged);
2. *backtest*: the same strategy file and config run a backtest on the
   configured data without error, without tripping the kill switch, with the
   portfolio reconciling with the venue and at least one order sent;
3. *parity*: the audit log replays to identical decisions, and the
   event-at-a-time live engine reproduces the backtest's fills on the first
   day of data (what will run live is what was tested);
4. *credentials* (live only): a signer key from the environment or a file
   (never from the config), an account address, and mainnet only with
   ``live.confirm_mainnet=true``.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hlquant.config.build import to_dict
from hlquant.core.assets import DEFAULT_ASSETS
from hlquant.core.errors import HlquantError
from hlquant.risk.engine import RiskConfig

#: Hyperliquid's REST budget is 1200 weight/min per IP (an order costs >= 1).
MAX_ORDERS_PER_S = 1200 / 60
EXCHANGE_MIN_ORDER_USD = 10.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"[{'PASS' if self.ok else 'FAIL'}] {self.name}: {self.detail}"


class PreflightError(HlquantError):
    """Raised with every failed check in the message, on one line (the CLI prints
    ``error: pre-flight refused: [FAIL] ...; [FAIL] ...``); ``checks`` has them all."""

    def __init__(self, checks: list[Check]) -> None:
        self.checks = checks
        bad = "; ".join(" ".join(str(c).split()) for c in checks if not c.ok)
        super().__init__(f"pre-flight refused: {bad}")


def check_risk(cfg: dict[str, Any]) -> Check:
    risk = cfg.get("risk")
    if not risk:
        return Check("risk config", False, "no risk group in the config (add risk=default)")
    fields = {f.name for f in dataclasses.fields(RiskConfig)}
    missing = sorted(fields - set(risk))
    if missing:
        return Check("risk config", False, f"missing keys {missing}: every limit must be explicit")
    problems = []
    syms = {s for a in (cfg.get("strategy") or {}).get("agents", []) for s in a.get("symbols") or []}
    max_lev = min((DEFAULT_ASSETS[s].max_leverage for s in syms if s in DEFAULT_ASSETS), default=50)
    if not 0 < float(risk["max_leverage"]) <= max_lev:
        problems.append(f"max_leverage {risk['max_leverage']} not in (0, {max_lev}] (asset maximum)")
    if not 0 < float(risk["max_notional_per_symbol"]) <= float(risk["max_gross_exposure"]):
        problems.append("need 0 < max_notional_per_symbol <= max_gross_exposure")
    if not 0 < float(risk["max_drawdown"]) < 1:
        problems.append(f"max_drawdown {risk['max_drawdown']} must be in (0, 1): a kill level is required")
    if not 0 < float(risk["max_orders_per_s"]) <= MAX_ORDERS_PER_S:
        problems.append(f"max_orders_per_s {risk['max_orders_per_s']} must be in (0, {MAX_ORDERS_PER_S:g}]")
    if float(risk["min_order_notional"]) < EXCHANGE_MIN_ORDER_USD:
        problems.append(f"min_order_notional below the exchange minimum ${EXCHANGE_MIN_ORDER_USD:g}")
    if float(risk["max_order_notional"]) > float(risk["max_notional_per_symbol"]) * 2:
        problems.append("max_order_notional above twice max_notional_per_symbol (a flip is at most 2x)")
    if int(risk["max_price_age_ms"]) > 5_000:
        problems.append(f"max_price_age_ms {risk['max_price_age_ms']} > 5000: trading on stale prices")
    if risk.get("kill_switch"):
        problems.append("kill_switch is engaged")
    if problems:
        return Check("risk config", False, "; ".join(problems))
    return Check("risk config", True, f"limits within bounds (leverage <= {risk['max_leverage']})")


def check_backtest(cfg: dict[str, Any], workdir: Path) -> tuple[Check, Any]:
    from hlquant.backtest.run import run_backtest

    c = {**cfg, "progress": False}
    try:
        res = run_backtest(c, out_dir=workdir, report=False)
    except Exception as e:  # the message is the point: show what broke
        return Check("backtest", False, f"{type(e).__name__}: {e}"), None
    s = res.stats
    if s["killed"]:
        return Check("backtest", False, f"kill switch tripped: {s['killed']}"), res
    if s["reconcile"]:
        return Check("backtest", False, f"portfolio differs from venue: {s['reconcile']}"), res
    n_orders = s["router"].get("sent", 0)
    if not n_orders:
        return Check("backtest", False, "the strategy sent no order on the backtest data"), res
    m = res.metrics
    return Check("backtest", True, f"{s['events']:,} events, {int(m['n_fills'])} fills, "
                 f"return {m['total_return']:+.2%}, max drawdown {m['max_drawdown']:.2%}"), res


def check_parity(cfg: dict[str, Any], workdir: Path) -> Check:
    from hlquant.backtest.run import replay

    rep = replay(workdir)
    if not rep.identical:
        return Check("parity", False, f"audit replay differs: {rep}")
    diff = live_engine_parity(cfg)
    if diff:
        return Check("parity", False, diff)
    return Check("parity", True, f"replay identical ({rep.compared} decisions); live engine == backtest")


def live_engine_parity(cfg: dict[str, Any], days: float = 1.0) -> str:
    """'' when the event-at-a-time engine reproduces the backtest's fills, else the first difference."""
    from hlquant.backtest.engine import Backtest
    from hlquant.config.build import load_market
    from hlquant.config.spec import KernelSpec
    from hlquant.live.engine import replay_market

    market = load_market(cfg.get("data", {}))
    t0 = int(market.span()[0])
    market = market.select(start=t0, end=t0 + int(days * 86_400_000))
    bt = Backtest(market, spec=KernelSpec.from_config(cfg, mode="sim")).run()
    f = bt.artifacts.fills
    ts = f["ts"].astype("datetime64[ms, UTC]").astype("int64").tolist()
    want = [(t, s, int(sd), round(p, 8), round(z, 8))
            for t, s, sd, p, z in zip(ts, f["symbol"], f["side"], f["px"], f["sz"], strict=True)]
    live = replay_market(KernelSpec.from_config(cfg, mode="paper"), market)
    got = [(x.ts_exch, x.symbol, int(x.side), round(x.px, 8), round(x.sz, 8)) for x in live.fills]
    if got == want:
        return ""
    i = next((k for k, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
    return (f"live engine differs from backtest at fill {i}: "
            f"{got[i] if i < len(got) else None} vs {want[i] if i < len(want) else None}")


def check_credentials(cfg: dict[str, Any]) -> Check:
    live = cfg.get("live") or {}
    network = live.get("network", "testnet")
    if network == "mainnet" and not live.get("confirm_mainnet"):
        return Check("credentials", False, "mainnet needs live.confirm_mainnet=true")
    if network not in ("testnet", "mainnet", "local"):
        return Check("credentials", False, f"unknown live.network {network!r}")
    key_env = live.get("key_env", "HLQUANT_PRIVATE_KEY")
    key_file = live.get("key_file")
    has_key = bool(os.environ.get(key_env)) or (bool(key_file) and Path(str(key_file)).expanduser().is_file())
    if not has_key:
        return Check("credentials", False, f"no signer key: set ${key_env} or live.key_file=/path (never in config)")
    if not live.get("account_address"):
        return Check("credentials", False, "live.account_address (the master account) is required")
    return Check("credentials", True, f"{network}, account {live['account_address']}, key from "
                 f"{'$' + key_env if os.environ.get(key_env) else 'file'}")


def preflight(cfg: Any, live: bool = True, raise_on_fail: bool = True) -> list[Check]:
    """Run every check; raise ``PreflightError`` listing the failures (unless told not to)."""
    c = to_dict(cfg)
    checks = [check_risk(c)]
    with tempfile.TemporaryDirectory(prefix="hlquant-preflight-") as d:
        bt_check, res = check_backtest(c, Path(d))
        checks.append(bt_check)
        if res is not None and bt_check.ok:
            checks.append(check_parity(c, Path(d)))
        else:
            checks.append(Check("parity", False, "not run: the backtest did not pass"))
    if live:
        checks.append(check_credentials(c))
    if raise_on_fail and not all(x.ok for x in checks):
        raise PreflightError(checks)
    return checks
