"""Trigger (tp/sl) orders and tp/sl groups.

A trigger fires on the mark (last mark, trade or candle close; a candle's
low/high for stops inside the bar) and then executes as a market order (no
price) or a limit at its price, emitting ``TRIGGERED`` first. A sell stop
and a buy take-profit fire on the way down, a buy stop and a sell
take-profit on the way up. Orders placed as a group (``normalTpsl``: an
entry and its tp/sl legs, the legs waiting until the entry fills;
``positionTpsl``: tp/sl legs on the current position) are siblings: when one
leg executes the other is cancelled (``siblingFilledCanceled``).
"""

from __future__ import annotations

from hlquant.core.events import CancelAck, OrderStatus
from hlquant.venues.sim.orders import SimOrder


class TriggerMixin:
    """Part of ``SimVenue``: trigger orders and grouped tp/sl legs."""

    def _check_triggers(self, symbol: str, ts: int, low: float, high: float,
                        open_px: float | None = None) -> None:
        tl = self._triggers[symbol]
        if not tl:
            return
        for o in list(tl):
            trig = o.req.trigger_px
            down = (o.sign < 0) == (o.req.tpsl != "tp")
            fired = low <= trig if down else high >= trig
            if not fired:
                continue
            tl.remove(o)
            o.triggered = True
            self._emit(o.ack(ts, OrderStatus.TRIGGERED))
            if open_px is None:
                ref = low  # a tick (trade / mark): the market is at that price now
            elif (down and open_px < trig) or (not down and open_px > trig):
                ref = open_px  # a candle gapped through the trigger: fills at the open
            else:
                ref = trig  # inside a candle's range: the trigger price was traded
            if o.req.px is None:
                self._execute(o, ts, ref=ref)
            else:
                self._execute(o, ts)
            if o.status != OrderStatus.OPEN:
                self._emit(o.ack(ts, error=o.error))
            if o.siblings and o.filled:
                self._cancel_siblings(o, ts)

    def _cancel_siblings(self, o: SimOrder, ts: int) -> None:
        for oid in o.siblings:
            s = self._orders.get(oid)
            if s is not None and s.is_live:
                s.reason = "siblingFilledCanceled"
                self._close(s, OrderStatus.CANCELED)
                self._emit(CancelAck(ts, ts, s.req.symbol, s.req.cloid, s.oid, True, "", s.reason))

    def _release_children(self, parent: SimOrder, ts: int) -> None:
        """An entry of a ``normalTpsl`` group filled: its legs start watching the mark."""
        for o in self._aux.waiting.pop(parent.oid, ()):
            if o.is_live:
                self._triggers[o.req.symbol].append(o)
