"""/exchange actions of the fake exchange, executed on the account's SimVenue.

Answers in the exchange's shapes: ``{"status":"ok","response":{"type":"order",
"data":{"statuses":[...]}}}`` with one status per order (``resting``,
``filled``, ``error``, or for tp/sl groups the strings ``waitingForFill`` /
``waitingForTrigger``), ``{"type":"default"}`` for actions without data, and
``{"status":"err","response":"<text>"}`` for a refused request. Actions the
fake does not simulate (spot, staking, deploys, validators, multi-sig) are
refused the same way, saying so, rather than answered as if they had worked.
"""

from __future__ import annotations

import math
from typing import Any

from eth_account import Account as EthAccount

from hlquant.core.errors import ExchangeError
from hlquant.core.events import CancelRequest, OrderRequest, OrderStatus, Side, Tif
from hlquant.fakeexchange.market import num
from hlquant.fakeexchange.views import Placed
from hlquant.hyperliquid.wire import TIF_FROM_WIRE

OK_DEFAULT = {"status": "ok", "response": {"type": "default"}}


def err(text: str) -> dict[str, Any]:
    return {"status": "err", "response": text}


class ActionsMixin:
    """Part of ``FakeExchange``: the /exchange endpoint."""

    async def _exchange(self, body: dict, ip: str) -> tuple[int, Any]:
        action = body.get("action") or {}
        t = action.get("type")
        self.counters[f"exchange:{t}"] += 1
        batch = len(action.get("orders") or action.get("cancels") or action.get("modifies") or [1])
        if not self._charge(ip, 1 + batch // 40):
            return 429, None
        nonce = body.get("nonce")
        sig = body.get("signature")
        if not isinstance(nonce, int) or not isinstance(sig, dict) or not isinstance(t, str):
            return 422, "Failed to deserialize the JSON body into the target type"
        wall = self.clock.wall_ms()  # expiries and nonces are real time even when market time is pinned
        expires = body.get("expiresAfter")
        if expires is not None and int(expires) < wall:
            self.counters["expired"] += 1
            return 200, err(f"Action expired at {int(expires)} (now {wall})")
        async with self._lock:
            signer, acct, refusal = self._authenticate(body, wall)
            if refusal:
                return 200, err(refusal)
            refusal = self._address_budget(acct, t, batch, wall)
            if refusal:
                self.counters["over_address_budget"] += 1
                return 200, err(refusal)
            acct.n_requests += batch
            return 200, self._apply(acct, action, self.clock.now_ms(), signer)

    @staticmethod
    def _address_budget(acct, t: str | None, batch: int, wall: int) -> str:
        """Hyperliquid's per-address limit: 10,000 requests plus one per USDC traded
        (cancels: ``min(cap + 100,000, 2 x cap)``); once spent, one request per 10 s."""
        cap = 10_000 + int(acct.volume)
        if t in ("cancel", "cancelByCloid"):
            cap = min(cap + 100_000, 2 * cap)
        if acct.n_requests + batch <= cap:
            return ""
        if wall - acct.over_budget_ms >= 10_000:
            acct.over_budget_ms = wall
            return ""
        return (f"Too many cumulative requests sent ({acct.n_requests + batch} > {cap}) for cumulative "
                f"volume traded ${acct.volume:.2f}. Place taker orders to free up 1 request per USDC traded.")

    # ------------------------------------------------------------------ dispatch
    def _apply(self, acct, action: dict, now: int, signer: str) -> dict[str, Any]:
        t = action.get("type")
        handler = getattr(self, f"_act_{t}", None)
        if handler is None:
            return err(f"Action {t!r} is not simulated by the fake exchange.")
        return handler(acct, action, now)

    def _symbol(self, asset: Any) -> str | None:
        try:
            return self.by_id.get(int(asset))
        except (TypeError, ValueError):
            return None

    # ------------------------------------------------------------------ orders
    def _wire_to_request(self, w: dict[str, Any], now: int) -> tuple[OrderRequest | None, str, float]:
        sym = self._symbol(w.get("a", -1))
        if sym is None:
            return None, f"Invalid asset {w.get('a')}", 0.0
        spec = self.assets[sym]
        try:
            px, sz = float(w["p"]), float(w["s"])
        except (KeyError, TypeError, ValueError):
            return None, "Order has invalid price or size.", 0.0
        if not math.isfinite(sz) or sz <= 0 or not spec.is_valid_size(sz):
            return None, "Order has invalid size.", 0.0
        t = w.get("t") or {}
        trigger_px = tpsl = None
        tif = Tif.GTC
        limit: float | None = px
        if "trigger" in t:
            trg = t["trigger"]
            trigger_px, tpsl = float(trg["triggerPx"]), trg.get("tpsl")
            if trg.get("isMarket"):
                limit = None
        else:
            tif = TIF_FROM_WIRE.get((t.get("limit") or {}).get("tif", "Gtc"), Tif.GTC)
        if not math.isfinite(px) or px <= 0 or not spec.is_valid_price(px):
            return None, f"Price must be divisible by tick size. asset={spec.asset_id}", 0.0
        side = Side.BUY if w.get("b") else Side.SELL
        return (OrderRequest(now, now, w.get("c") or "", "", "", sym, side, sz, limit, tif,
                             bool(w.get("r")), trigger_px, tpsl), "", px)

    def _status(self, acct, ack, req: OrderRequest, sent_px: float, now: int) -> Any:
        if ack.status == OrderStatus.REJECTED:
            return {"error": ack.error}
        acct.placed.setdefault(ack.oid, Placed(now, num(sent_px), "", now))
        self.orders_received.append({"account": acct.address, "oid": ack.oid, "cloid": req.cloid,
                                     "coin": req.symbol, "side": "B" if req.side > 0 else "A",
                                     "sz": num(req.size), "px": num(sent_px)})
        cl = {"cloid": req.cloid} if req.cloid else {}
        if ack.status == OrderStatus.FILLED:
            self._order_update(acct, ack.oid, now)
            return {"filled": {"totalSz": num(ack.filled_sz), "avgPx": num(ack.avg_px), "oid": ack.oid} | cl}
        self._order_update(acct, ack.oid, now)
        o = acct.venue.order_object(ack.oid)
        if o is not None and o.group:
            parent = acct.venue.order_object(acct.placed[ack.oid].parent)
            if parent is not None and parent.status != OrderStatus.FILLED:
                return "waitingForFill"
            return "waitingForTrigger"
        return {"resting": {"oid": ack.oid} | cl}

    def _place(self, acct, wires: list[dict[str, Any]], now: int, grouping: str = "na") -> list[Any]:
        statuses: list[Any] = []
        reqs: list[tuple[int, OrderRequest, float]] = []
        for w in wires:
            req, error, px = self._wire_to_request(w if isinstance(w, dict) else {}, now)
            if req is None:
                statuses.append({"error": error})
            else:
                statuses.append(None)
                reqs.append((len(statuses) - 1, req, px))
        if reqs:
            acks = acct.venue.submit([r for _, r, _ in reqs], grouping=grouping)
            parent = 0
            if grouping == "normalTpsl" and acks and acks[0].status != OrderStatus.REJECTED \
                    and reqs[0][1].trigger_px is None:
                parent = acks[0].oid
            for k, ((i, req, px), ack) in enumerate(zip(reqs, acks, strict=True)):
                if parent and k > 0 and ack.oid:
                    acct.placed.setdefault(ack.oid, Placed(now, num(px), "", now)).parent = parent
                statuses[i] = self._status(acct, ack, req, px, now)
        return statuses

    def _act_order(self, acct, action: dict, now: int) -> dict[str, Any]:
        grouping = action.get("grouping", "na")
        if grouping not in ("na", "normalTpsl", "positionTpsl"):
            return err(f"Invalid grouping {grouping!r}")
        orders = action.get("orders") or []
        return {"status": "ok", "response": {"type": "order",
                                             "data": {"statuses": self._place(acct, orders, now, grouping)}}}

    def _act_cancel(self, acct, action: dict, now: int) -> dict[str, Any]:
        out = []
        for c in action.get("cancels") or []:
            sym = self._symbol(c.get("a", c.get("asset", -1))) or ""
            req = CancelRequest(now, now, sym, c.get("cloid", "") or "", int(c.get("o", 0) or 0), "user")
            ack = acct.venue.cancel([req])[0]
            if ack.ok:
                self._order_update(acct, ack.oid, now)
            out.append("success" if ack.ok else {"error": ack.error})
        return {"status": "ok", "response": {"type": "cancel", "data": {"statuses": out}}}

    _act_cancelByCloid = _act_cancel  # noqa: N815 (the wire's action name)

    def _act_modify(self, acct, action: dict, now: int) -> dict[str, Any]:
        st = self._modify(acct, action, now)
        if isinstance(st, dict) and "error" in st:
            return err(st["error"])
        return OK_DEFAULT

    def _act_batchModify(self, acct, action: dict, now: int) -> dict[str, Any]:  # noqa: N802
        statuses = [self._modify(acct, m, now) for m in action.get("modifies") or []]
        return {"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}}

    def _modify(self, acct, m: dict[str, Any], now: int) -> Any:
        ident = m.get("oid")
        req, error, px = self._wire_to_request(m.get("order") or {}, now)
        if req is None:
            return {"error": error}
        v = acct.venue
        old_oid = v.oid_of(ident) if isinstance(ident, str) else int(ident or 0)
        old = v.order_object(old_oid or -1)
        if self.faults.fill_before_next_modify and old is not None and old.status == OrderStatus.OPEN:
            self.faults.fill_before_next_modify = False
            self.counters["modify_races"] += 1
            v.force_fill(old.oid, now)  # the race: the old oid fills first
        cloid = req.cloid or (old.req.cloid if old is not None else "")
        if old is not None and not req.cloid:
            req = OrderRequest(req.ts_exch, req.ts_recv, cloid, req.intent_id, req.agent, req.symbol,
                               req.side, req.size, req.px, req.tif, req.reduce_only, req.trigger_px, req.tpsl)
        ack = v.modify(ident if isinstance(ident, str) else int(ident or 0), req)
        if ack.status == OrderStatus.REJECTED:
            return {"error": ack.error}
        if old is not None and old.oid != ack.oid:
            self._order_update(acct, old.oid, now)
        return self._status(acct, ack, req, px, now)

    # ------------------------------------------------------------------ account
    def _act_scheduleCancel(self, acct, action: dict, now: int) -> dict[str, Any]:  # noqa: N802
        try:
            acct.venue.schedule_cancel(action.get("time"))
        except ExchangeError as e:
            return err(e.message)
        return OK_DEFAULT

    def _act_updateLeverage(self, acct, action: dict, now: int) -> dict[str, Any]:  # noqa: N802
        sym = self._symbol(action.get("asset", -1))
        if sym is None:
            return err(f"Invalid asset {action.get('asset')}")
        try:
            acct.venue.set_leverage(sym, int(action["leverage"]), bool(action.get("isCross", True)))
        except (ExchangeError, KeyError, TypeError, ValueError) as e:
            return err(getattr(e, "message", str(e)))
        return OK_DEFAULT

    def _act_updateIsolatedMargin(self, acct, action: dict, now: int) -> dict[str, Any]:  # noqa: N802
        sym = self._symbol(action.get("asset", -1))
        if sym is None:
            return err(f"Invalid asset {action.get('asset')}")
        try:
            acct.venue.update_isolated_margin(sym, int(action["ntli"]) / 1e6)
        except (ExchangeError, KeyError, TypeError, ValueError) as e:
            return err(getattr(e, "message", str(e)))
        self._record_value(acct, now)
        return OK_DEFAULT

    def _act_approveAgent(self, acct, action: dict, now: int) -> dict[str, Any]:  # noqa: N802
        agent = str(action.get("agentAddress", "")).lower()
        if len(agent) != 42:
            return err("Invalid agent address.")
        self.approve_agent(agent, acct.address, action.get("agentName") or "")
        return OK_DEFAULT

    def _act_usdSend(self, acct, action: dict, now: int) -> dict[str, Any]:  # noqa: N802
        amount = _amount(action.get("amount"))
        dest = str(action.get("destination", "")).lower()
        if amount is None or amount <= 0 or len(dest) != 42:
            return err("Invalid usdSend.")
        if amount > acct.venue.withdrawable() + 1e-9:
            return err("Insufficient balance for withdrawal.")
        acct.venue.transfer(-amount)
        to = self.add_account(dest, 0.0)
        to.venue.transfer(amount)
        acct.ledger.append({"time": now, "hash": _hash(now, acct.n_requests),
                            "delta": {"type": "send", "usdc": num(amount), "destination": dest, "fee": "0.0"}})
        to.ledger.append({"time": now, "hash": _hash(now, acct.n_requests),
                          "delta": {"type": "send", "usdc": num(amount), "user": acct.address, "fee": "0.0"}})
        self._record_value(acct, now)
        return OK_DEFAULT

    def _act_withdraw3(self, acct, action: dict, now: int) -> dict[str, Any]:  # noqa: N802
        amount = _amount(action.get("amount"))
        if amount is None or amount <= 0:
            return err("Invalid withdrawal amount.")
        fee = 1.0  # Hyperliquid charges a $1 withdrawal fee
        if amount > acct.venue.withdrawable() + 1e-9:
            return err("Insufficient balance for withdrawal.")
        acct.venue.transfer(-amount)
        acct.ledger.append({"time": now, "hash": _hash(now, acct.n_requests),
                            "delta": {"type": "withdraw", "usdc": num(amount - fee), "nonce": now,
                                      "fee": num(fee)}})
        self._record_value(acct, now)
        return OK_DEFAULT

    def _act_createSubAccount(self, acct, action: dict, now: int) -> dict[str, Any]:  # noqa: N802
        name = str(action.get("name", ""))
        if not name:
            return err("Sub-account name must not be empty.")
        sub = EthAccount.create().address.lower()
        self.add_account(sub, 0.0)
        self.sub_accounts[sub] = acct.address
        self.sub_account_names[sub] = name
        return {"status": "ok", "response": {"type": "createSubAccount", "data": sub}}

    def _act_subAccountTransfer(self, acct, action: dict, now: int) -> dict[str, Any]:  # noqa: N802
        sub = str(action.get("subAccountUser", "")).lower()
        if self.sub_accounts.get(sub) != acct.address:
            return err(f"Sub-account {sub} does not exist or is not controlled by {acct.address}.")
        usd = int(action.get("usd", 0)) / 1e6
        src, dst = (acct, self.accounts[sub]) if action.get("isDeposit") else (self.accounts[sub], acct)
        if usd <= 0 or usd > src.venue.withdrawable() + 1e-9:
            return err("Insufficient balance for sub-account transfer.")
        src.venue.transfer(-usd)
        dst.venue.transfer(usd)
        return OK_DEFAULT

    def _act_setReferrer(self, acct, action: dict, now: int) -> dict[str, Any]:  # noqa: N802
        if not action.get("code"):
            return err("Referral code must not be empty.")
        self.referrers[acct.address] = str(action["code"])
        return OK_DEFAULT

    def _act_approveBuilderFee(self, acct, action: dict, now: int) -> dict[str, Any]:  # noqa: N802
        self.builder_fees[(acct.address, str(action.get("builder", "")).lower())] = str(action.get("maxFeeRate"))
        return OK_DEFAULT

    def _act_noop(self, acct, action: dict, now: int) -> dict[str, Any]:
        return OK_DEFAULT  # only consumes the nonce


def _amount(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _hash(now: int, n: int) -> str:
    return "0x" + f"{now:032x}{n:032x}"

