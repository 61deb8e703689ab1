"""The exchange is the truth: compare the kernel's book with it, adopt what is unexplained.

Used by single-process live sessions (``LiveEngine.reconcile``) and by the risk
process of the multi-process topology, which also adopts the exchange's state when
it (re)starts: a risk process restarted after a crash must not believe it is flat.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hlquant.core.events import OrderRequest, PositionCorrected, PositionMismatch, Side, Tif

log = logging.getLogger(__name__)


def reconcile_positions(portfolio: Any, positions: Callable[[], dict[str, float]], audit: Any, now: int,
                        recover: Callable[[], Any] | None = None, tol: float = 1e-9) -> dict[str, tuple[float, float]]:
    """Compare ``portfolio`` with ``positions()`` (the exchange's); on a mismatch audit it,
    let ``recover`` fetch missed fills, and adopt the exchange's size for whatever gap
    remains (audited as a correction). Returns the mismatches found before resolving."""
    diff = portfolio.reconcile(positions(), tol)
    if not diff:
        return {}
    audit.record(PositionMismatch(now, now, ",".join(sorted(diff)), {s: list(v) for s, v in diff.items()}))
    remaining = diff
    if recover is not None:
        recover()
        remaining = portfolio.reconcile(positions(), tol)
    for sym, (mine, theirs) in remaining.items():
        portfolio.set_position(sym, theirs, portfolio.marks.get(sym, 0.0))
        audit.record(PositionCorrected(now, now, sym, mine, theirs))
    return diff


def adopt_exchange_state(kernel: Any, info: Any, user: str) -> dict[str, Any]:
    """At start: positions (with entry prices), the account value and the open orders the
    exchange holds for ``user`` become the kernel's, each adoption audited. The returned
    ``fills`` (the account's recent fills, fetched after the positions) are in those
    numbers already: the caller must not apply them again when the user channel replays
    them as its snapshot (seed the feed's trade ids with them)."""
    st = info.clearinghouse_state(user)
    now = kernel.clock.now_ms()
    pf = kernel.portfolio
    adopted = {}
    for sym, p in st.positions.items():
        if sym in kernel.assets and p.size:
            pf.set_position(sym, p.size, p.entry_px)
            pf.marks.setdefault(sym, p.entry_px)
            kernel.audit.record(PositionCorrected(now, now, sym, 0.0, p.size))
            adopted[sym] = p.size
    unrealized = sum(p.unrealized_pnl for p in st.positions.values())
    pf.initial_cash = float(st.account_value) - unrealized
    orders = 0
    for o in info.open_orders(user):
        if o.coin in kernel.assets and o.cloid:
            side = Side.BUY if o.side == "B" else Side.SELL
            req = OrderRequest(now, now, o.cloid, "", "adopted", o.coin, side, o.sz, o.limit_px, Tif.GTC)
            kernel.router.adopt(req, o.oid)
            orders += 1
    log.info("adopted from the exchange: positions %s, account value %.2f, %d open orders",
             adopted, st.account_value, orders)
    return {"positions": adopted, "account_value": st.account_value, "orders": orders,
            "fills": info.user_fills(user)}


#: how far back a restarted risk process reads its own audit stream and the order streams
UNSENT_SCAN = 20_000


def resolve_unsent(kernel: Any, r: Any, namespace: str, session: str, info: Any, user: str,
                   scan: int = UNSENT_SCAN) -> list[str]:
    """A risk process killed between recording an approved order (on its audit stream,
    before any order leaves) and publishing it leaves a record with no outcome and an
    order nobody will send. At start, the tail of its own audit stream is read: an
    ``OrderRequest`` with no outcome that no router replica has claimed, that the order
    streams do not hold and that the exchange does not know was never sent, and is
    recorded as such (``OrderAck`` CANCELED, ``UNAVAILABLE``: the request never left).
    Returns those cloids."""
    import json

    from hlquant.bus.redis_state import unpack
    from hlquant.core.events import ErrorCode, OrderAck, OrderStatus
    from hlquant.storage.writer import AUDIT_TOPIC

    reqs: dict[str, str] = {}  # cloid -> symbol
    done: set[str] = set()
    for _id, f in r.xrevrange(f"{namespace}:{AUDIT_TOPIC}:{{{session}}}", count=scan):
        rec = json.loads(f[b"d"])
        kind, cloid = rec.get("kind"), rec.get("id")
        if kind == "OrderRequest" and rec.get("agent") != "adopted":
            reqs.setdefault(cloid, rec.get("symbol", ""))
        elif kind in ("Fill", "CancelAck") or (
                kind == "OrderAck" and json.loads(rec.get("payload") or "{}").get("status") not in (None, "PENDING")):
            done.add(cloid)
    open_now = set(kernel.router.open)
    todo = {c: s for c, s in reqs.items() if c not in done and c not in open_now}
    if not todo:
        return []
    queued: set[str] = set()
    for sym in sorted(set(todo.values())):
        for _id, f in r.xrevrange(f"{namespace}:OrderRequest:{{{sym}}}", count=scan):
            try:
                queued.add(unpack(f[b"d"]).cloid)
            except Exception:  # an undecodable entry is the routers' to report
                continue
    unsent = []
    now = kernel.clock.now_ms()
    for cloid, sym in todo.items():
        idem = f"{namespace}:idem:{{{cloid}}}"
        if cloid in queued or r.exists(idem, idem + ":state"):
            continue  # a router replica has it (or will): its outcome comes on Exec
        try:
            if info.order_status(user, cloid) is not None:
                continue  # the exchange has it: sent after all
        except Exception as e:  # cannot ask: leave it for verify to report
            log.warning("unsent order %s not resolved: %s", cloid, e)
            continue
        kernel.audit.record(OrderAck(now, now, cloid, sym, OrderStatus.CANCELED, 0,
                                     error="not sent: the risk process stopped after approving it",
                                     code=ErrorCode.UNAVAILABLE))
        unsent.append(cloid)
    if unsent:
        log.warning("%d approved order(s) a previous risk process never sent: recorded as not sent",
                    len(unsent))
    return unsent
