"""Round trips: the trades a person counts, rebuilt from fills.

A round trip opens when a symbol's position leaves zero and closes when it is
back at zero; a fill that flips the position closes one trip and opens the
next with the remainder (its fee split by size). Each trip carries its price
PnL (the venue's ``closed_pnl`` of its reducing fills), its fees, the funding
paid or received while it was open (payments whose position has the trip's
sign), and why it ended: the closing fill's order tells a signal from a stop,
a take-profit, a liquidation or the risk engine. A trip still open at the
end is listed as ``open``, marked to the last price, and left out of the
statistics.

Attribution to agents: the account nets every agent's target into one
position per symbol, so a trip belongs to the agent whose order opened it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

TRADE_COLUMNS = [
    "symbol", "agent", "direction", "entry_time", "exit_time", "entry_px", "exit_px", "size",
    "notional", "duration_min", "pnl", "fees", "funding", "net_pnl", "return", "exit_reason",
    "exit_note", "n_fills",
]


class ExitReason(StrEnum):
    """Why a round trip ended (``exit_reason``)."""

    SIGNAL = "signal"            # an agent's target or order
    STOP = "stop"                # a stop-loss trigger order (tpsl="sl")
    TAKE_PROFIT = "take_profit"  # a take-profit trigger order (tpsl="tp")
    LIQUIDATION = "liquidation"  # the venue closed it for want of margin
    RISK = "risk"                # the risk engine's own order (an agent lost, a re-net)
    OPEN = "open"                # still open when the run ended (marked to the last price)


def _reason(fill: Any, orders: dict[str, tuple]) -> tuple[ExitReason, str]:
    if fill.liquidity == "liquidation":
        return ExitReason.LIQUIDATION, ""
    o = orders.get(fill.cloid)
    if o is None:
        return ExitReason.SIGNAL, ""
    agent, tpsl, note = o
    if tpsl == "sl":
        return ExitReason.STOP, note
    if tpsl == "tp":
        return ExitReason.TAKE_PROFIT, note
    if agent == "risk":
        return ExitReason.RISK, note
    return ExitReason.SIGNAL, note


class _Trip:
    __slots__ = ("symbol", "agent", "direction", "entry_time", "exit_time", "in_qty", "in_val",
                 "out_qty", "out_val", "max_size", "pnl", "fees", "n_fills")

    def __init__(self, symbol: str, agent: str, direction: int, t: Any) -> None:
        self.symbol, self.agent, self.direction, self.entry_time = symbol, agent, direction, t
        self.exit_time = None
        self.in_qty = self.in_val = self.out_qty = self.out_val = 0.0
        self.max_size = self.pnl = self.fees = 0.0
        self.n_fills = 0


def round_trips(fills: pd.DataFrame, funding: pd.DataFrame | None = None,
                orders: pd.DataFrame | None = None, prices: pd.DataFrame | None = None,
                end: Any = None) -> pd.DataFrame:
    """One row per round trip (``TRADE_COLUMNS``), ordered by entry time.

    ``fills``: the run's fills (``FILL_COLUMNS``); ``funding``: its payments;
    ``orders``: ``cloid, agent, tpsl, reason`` of the orders sent (exit reasons);
    ``prices``: closes per symbol, to mark trips still open at ``end``."""
    om: dict[str, tuple] = {}
    if orders is not None and len(orders):
        om = {c: (a, t, r) for c, a, t, r in zip(orders["cloid"], orders["agent"], orders["tpsl"],
                                                 orders["reason"], strict=True)}
    trips: list[tuple[_Trip, ExitReason, str]] = []
    opened: list[_Trip] = []
    if fills is not None and len(fills):
        for sym, g in fills.groupby("symbol", sort=True):
            pos = 0.0
            tr: _Trip | None = None
            tol = 1e-9 * max(1.0, float(g["sz"].abs().max()))
            for f in g.itertuples(index=False):
                signed = int(f.side) * float(f.sz)
                if tr is None or abs(pos) <= tol:
                    tr = _Trip(str(sym), str(f.agent), 1 if signed > 0 else -1, f.ts)
                    pos = 0.0
                tr.n_fills += 1
                if np.sign(signed) == tr.direction:  # adds to the position
                    tr.in_qty += abs(signed)
                    tr.in_val += abs(signed) * f.px
                    tr.fees += f.fee
                    pos += signed
                    tr.max_size = max(tr.max_size, abs(pos))
                    continue
                close = min(abs(signed), abs(pos))
                share = close / abs(signed)
                tr.out_qty += close
                tr.out_val += close * f.px
                tr.fees += f.fee * share
                tr.pnl += f.closed_pnl
                pos += signed
                if abs(pos) > tol and np.sign(pos) == tr.direction:
                    continue  # reduced, still open
                tr.exit_time = f.ts
                trips.append((tr, *_reason(f, om)))
                rest = abs(signed) - close
                tr = None
                if rest > tol:  # flipped: the remainder opens the next trip
                    tr = _Trip(str(sym), str(f.agent), 1 if signed > 0 else -1, f.ts)
                    tr.n_fills = 1
                    tr.in_qty, tr.in_val, tr.fees = rest, rest * f.px, f.fee * (1 - share)
                    tr.max_size = rest
                    pos = np.sign(signed) * rest
                else:
                    pos = 0.0
            if tr is not None and abs(pos) > tol:
                opened.append(tr)
    rows = []
    for tr, why, note in trips:
        rows.append(_row(tr, tr.out_val / tr.out_qty if tr.out_qty else np.nan, tr.pnl, why, note))
    for tr in opened:
        last = np.nan
        if prices is not None and tr.symbol in prices and len(prices):
            col = prices[tr.symbol].dropna()
            last = float(col.iloc[-1]) if len(col) else np.nan
        avg_in = tr.in_val / tr.in_qty
        open_qty = tr.in_qty - tr.out_qty
        tr.exit_time = end if end is not None else tr.entry_time
        pnl = tr.pnl + tr.direction * (last - avg_in) * open_qty
        rows.append(_row(tr, last, pnl, ExitReason.OPEN, "marked to the last price"))
    df = pd.DataFrame(rows, columns=TRADE_COLUMNS)
    if not len(df):
        return df
    df = df.sort_values(["entry_time", "symbol"], kind="stable").reset_index(drop=True)
    _add_funding(df, funding)
    df["net_pnl"] = df["pnl"] - df["fees"] + df["funding"]
    df["return"] = df["net_pnl"] / df["notional"].where(df["notional"] > 0)
    return df


def _row(tr: _Trip, exit_px: float, pnl: float, why: ExitReason, note: str) -> dict:
    entry_px = tr.in_val / tr.in_qty if tr.in_qty else np.nan
    dur = (pd.Timestamp(tr.exit_time) - pd.Timestamp(tr.entry_time)).total_seconds() / 60.0
    return {"symbol": tr.symbol, "agent": tr.agent, "direction": "long" if tr.direction > 0 else "short",
            "entry_time": tr.entry_time, "exit_time": tr.exit_time, "entry_px": entry_px, "exit_px": exit_px,
            "size": tr.max_size, "notional": tr.max_size * entry_px, "duration_min": dur, "pnl": pnl,
            "fees": tr.fees, "funding": 0.0, "net_pnl": 0.0, "return": 0.0, "exit_reason": str(why),
            "exit_note": note, "n_fills": tr.n_fills}


def _add_funding(df: pd.DataFrame, funding: pd.DataFrame | None) -> None:
    """Each payment goes to the trip of its symbol open at its time with its position's sign."""
    if funding is None or not len(funding):
        return
    amounts = np.zeros(len(df))
    sign = np.where(df["direction"] == "long", 1.0, -1.0)
    for sym, g in funding[funding["position"] != 0].groupby("symbol"):
        idx = np.flatnonzero(df["symbol"].to_numpy() == sym)
        if not len(idx):
            continue
        t0 = pd.DatetimeIndex(df["entry_time"].iloc[idx])
        t1 = pd.DatetimeIndex(df["exit_time"].iloc[idx])
        for t, pos, amt in zip(pd.DatetimeIndex(g["ts"]), g["position"].to_numpy(), g["amount"].to_numpy(),
                               strict=True):
            hit = idx[(t0 <= t) & (t <= t1) & (sign[idx] == np.sign(pos))]
            if len(hit):
                amounts[hit[-1]] += amt
    df["funding"] = amounts


def trade_stats(trips: pd.DataFrame) -> dict[str, float]:
    """Statistics over closed round trips (net of fees and funding), see docs/research.md."""
    closed = trips[trips["exit_reason"] != ExitReason.OPEN] if len(trips) else trips
    net = closed["net_pnl"].to_numpy(dtype=float) if len(closed) else np.zeros(0)
    wins, losses = net[net > 0], net[net < 0]
    gross_loss = float(-losses.sum())
    streak = longest = 0
    for v in net:
        streak = streak + 1 if v < 0 else 0
        longest = max(longest, streak)
    n = len(net)
    return {
        "n_trades": float(n),
        "win_rate": len(wins) / n if n else 0.0,
        "profit_factor": (float(wins.sum()) / gross_loss if gross_loss > 0
                          else (float("inf") if len(wins) else 0.0)),
        "expectancy": float(net.mean()) if n else 0.0,
        "avg_win": float(wins.mean()) if len(wins) else 0.0,
        "avg_loss": float(losses.mean()) if len(losses) else 0.0,
        "max_consecutive_losses": float(longest),
        "avg_trade_minutes": float(closed["duration_min"].mean()) if n else 0.0,
    }


def breakdown(trips: pd.DataFrame, by: str) -> pd.DataFrame:
    """Closed round trips grouped by ``symbol`` or ``agent``: count, win rate, PnL and its parts."""
    closed = trips[trips["exit_reason"] != ExitReason.OPEN] if len(trips) else trips
    rows = []
    for key, g in closed.groupby(by, sort=True) if len(closed) else ():
        s = trade_stats(g)
        rows.append({by: key, "trades": int(s["n_trades"]), "win_rate": s["win_rate"],
                     "net_pnl": float(g["net_pnl"].sum()), "pnl": float(g["pnl"].sum()),
                     "fees": float(g["fees"].sum()), "funding": float(g["funding"].sum()),
                     "profit_factor": s["profit_factor"], "expectancy": s["expectancy"],
                     "avg_minutes": s["avg_trade_minutes"]})
    return pd.DataFrame(rows, columns=[by, "trades", "win_rate", "net_pnl", "pnl", "fees", "funding",
                                       "profit_factor", "expectancy", "avg_minutes"])


def orders_from_audit(frame: pd.DataFrame) -> pd.DataFrame:
    """``cloid, intent_id, agent, tpsl, reason`` of every order in an audit frame (the
    intent's reason attached): what ``round_trips`` needs to tell why a trip ended."""
    import json

    cols = ["cloid", "intent_id", "agent", "tpsl", "reason"]
    if frame is None or not len(frame):
        return pd.DataFrame(columns=cols)
    intents = frame[frame["kind"] == "Intent"]
    why = {i: json.loads(p).get("reason", "") for i, p in zip(intents["id"], intents["payload"], strict=True)}
    reqs = frame[frame["kind"] == "OrderRequest"]
    rows = []
    for cloid, agent, p in zip(reqs["id"], reqs["agent"], reqs["payload"], strict=True):
        d = json.loads(p)
        iid = d.get("intent_id", "")
        rows.append((cloid, iid, agent, d.get("tpsl") or "", why.get(iid, "")))
    return pd.DataFrame(rows, columns=cols).drop_duplicates("cloid", keep="last")
