"""Portfolio: the client-side book of positions, cash and PnL.

Built only from fills and funding payments (what the venue reports), so it
is the same in simulation and live, and can be reconciled against the
venue's own view (``Venue.positions()``). Trading PnL, fees and funding are
kept apart: ``equity = initial_cash + realized + unrealized - fees + funding``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hlquant.core.events import Fill, FundingPayment


@dataclass(slots=True)
class Position:
    size: float = 0.0  # signed, coin units
    entry_px: float = 0.0  # average entry of the open size
    realized: float = 0.0
    fees: float = 0.0
    funding: float = 0.0
    traded_notional: float = 0.0
    n_fills: int = 0

    def unrealized(self, mark: float) -> float:
        return self.size * (mark - self.entry_px) if self.size else 0.0


class Portfolio:
    """Positions per symbol and per agent attribution of fills."""

    def __init__(self, initial_cash: float = 100_000.0) -> None:
        self.initial_cash = float(initial_cash)
        self.positions: dict[str, Position] = {}
        self.marks: dict[str, float] = {}
        self.agent_realized: dict[str, float] = {}
        self.agent_fees: dict[str, float] = {}

    def _pos(self, symbol: str) -> Position:
        p = self.positions.get(symbol)
        if p is None:
            p = self.positions[symbol] = Position()
        return p

    def position(self, symbol: str) -> float:
        p = self.positions.get(symbol)
        return p.size if p is not None else 0.0

    def mark(self, symbol: str, px: float) -> None:
        self.marks[symbol] = px

    def on_fill(self, fill: Fill) -> float:
        """Apply a fill; returns the PnL it realized (closing part only)."""
        p = self._pos(fill.symbol)
        signed = fill.sz * int(fill.side)
        realized = 0.0
        if p.size == 0.0 or (p.size > 0) == (signed > 0):  # open or add
            new = p.size + signed
            p.entry_px = (p.entry_px * abs(p.size) + fill.px * abs(signed)) / abs(new)
            p.size = new
        else:  # reduce, close or flip
            closing = min(abs(signed), abs(p.size))
            realized = closing * (fill.px - p.entry_px) * (1 if p.size > 0 else -1)
            new = p.size + signed
            if abs(new) < 1e-12:
                p.size, p.entry_px = 0.0, 0.0
            elif (new > 0) != (p.size > 0):  # flipped: remainder opens at fill px
                p.size, p.entry_px = new, fill.px
            else:
                p.size = new
        p.realized += realized
        p.fees += fill.fee
        p.traded_notional += fill.px * fill.sz
        p.n_fills += 1
        self.marks.setdefault(fill.symbol, fill.px)
        if fill.agent:
            self.agent_realized[fill.agent] = self.agent_realized.get(fill.agent, 0.0) + realized
            self.agent_fees[fill.agent] = self.agent_fees.get(fill.agent, 0.0) + fill.fee
        return realized

    def on_funding(self, pay: FundingPayment) -> None:
        self._pos(pay.symbol).funding += pay.amount

    # --- aggregates ---------------------------------------------------------
    def unrealized(self) -> float:
        return sum(
            p.unrealized(self.marks.get(s, p.entry_px)) for s, p in self.positions.items() if p.size
        )

    def realized(self) -> float:
        return sum(p.realized for p in self.positions.values())

    def fees(self) -> float:
        return sum(p.fees for p in self.positions.values())

    def funding(self) -> float:
        return sum(p.funding for p in self.positions.values())

    def equity(self) -> float:
        eq = self.initial_cash
        for s, p in self.positions.items():
            eq += p.realized - p.fees + p.funding
            if p.size:
                eq += p.size * (self.marks.get(s, p.entry_px) - p.entry_px)
        return eq

    def notional(self, symbol: str) -> float:
        p = self.positions.get(symbol)
        if p is None or not p.size:
            return 0.0
        return p.size * self.marks.get(symbol, p.entry_px)

    def gross_exposure(self) -> float:
        return sum(abs(self.notional(s)) for s in self.positions)

    def leverage(self) -> float:
        eq = self.equity()
        return self.gross_exposure() / eq if eq > 0 else math.inf

    def reconcile(self, venue_positions: dict[str, float], tol: float = 1e-9) -> dict[str, tuple[float, float]]:
        """Symbols whose size differs from the venue's: {symbol: (ours, venue's)}."""
        out = {}
        for s in set(venue_positions) | {s for s, p in self.positions.items() if p.size}:
            ours, theirs = self.position(s), float(venue_positions.get(s, 0.0))
            if abs(ours - theirs) > tol:
                out[s] = (ours, theirs)
        return out

    def set_position(self, symbol: str, size: float, entry_px: float) -> None:
        """Adopt the venue's size (reconciliation of an unrecoverable gap); realized PnL is
        unchanged, the new size is carried at ``entry_px``."""
        p = self._pos(symbol)
        p.size = float(size)
        p.entry_px = float(entry_px) if size else 0.0
