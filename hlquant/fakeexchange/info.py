"""/info requests of the fake exchange.

Every request type the official SDK's ``Info`` sends is answered in the
shape of Hyperliquid's docs ("for developers > API > info endpoint":
https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint,
and its perpetuals page), from the market state and the accounts' SimVenues.
What the fake has none of (spot balances, staking, TWAPs, vaults) is
answered as the exchange answers an account that has none. Request types it
does not simulate at all (deploy auctions, dex abstraction) and unknown
types get the exchange's answer to a body it cannot read: HTTP 422 with a
plain-text reason, which the SDK raises as ``ClientError``.
"""

from __future__ import annotations

from typing import Any

from hlquant.fakeexchange.market import interval_ms, num
from hlquant.fakeexchange.views import clearinghouse, frontend_order, open_orders, status_wire

INFO_WEIGHT_2 = {"l2Book", "allMids", "clearinghouseState", "orderStatus", "spotClearinghouseState",
                 "exchangeStatus"}
USER_FILLS_CAP = 2000
HISTORICAL_ORDERS_CAP = 2000
UNREADABLE = "Failed to deserialize the JSON body into the target type"
NOT_SIMULATED = {"perpDeployAuctionStatus", "spotDeployState", "userDexAbstraction", "userAbstraction",
                 "spotPairDeployAuctionStatus"}
PORTFOLIO_WINDOWS = (("day", 86_400_000), ("week", 7 * 86_400_000), ("month", 30 * 86_400_000),
                     ("allTime", None))


class InfoMixin:
    """Part of ``FakeExchange``: the /info endpoint."""

    def _info_weight(self, t: str) -> int:
        if t == "userRole":
            return 60
        return 2 if t in INFO_WEIGHT_2 else 20

    async def _info(self, body: dict, ip: str) -> tuple[int, Any]:
        t = body.get("type") if isinstance(body, dict) else None
        self.counters[f"info:{t}"] += 1
        if not self._charge(ip, self._info_weight(str(t))):
            return 429, None
        handler = getattr(self, f"_info_{t}", None) if isinstance(t, str) else None
        if handler is None:
            if t in NOT_SIMULATED:
                return 422, f"{UNREADABLE}: {t} is not simulated by the fake exchange"
            return 422, f"{UNREADABLE}: unknown variant `{t}`"
        now = self.clock.now_ms()
        user = str(body.get("user", "")).lower()
        try:
            return 200, handler(body, self.accounts.get(user), user, now)
        except (KeyError, TypeError, ValueError) as e:
            return 422, f"{UNREADABLE}: {e}"

    # --- market ------------------------------------------------------------------------
    def _info_meta(self, body, acct, user, now):
        return {"universe": self.universe, "marginTables": [], "collateralToken": 0}

    def _info_spotMeta(self, body, acct, user, now):  # noqa: N802
        return {"universe": [], "tokens": []}

    def _info_spotMetaAndAssetCtxs(self, body, acct, user, now):  # noqa: N802
        return [{"universe": [], "tokens": []}, []]

    def _info_perpDexs(self, body, acct, user, now):  # noqa: N802
        return [None]  # the first perp dex (the only one here) is listed as null

    def _info_metaAndAssetCtxs(self, body, acct, user, now):  # noqa: N802
        ctxs = [self.market.asset_ctx(a["name"], self.open_interest(a["name"])) for a in self.universe]
        return [{"universe": self.universe, "marginTables": [], "collateralToken": 0}, ctxs]

    def _info_allMids(self, body, acct, user, now):  # noqa: N802
        return self.market.all_mids()

    def _info_l2Book(self, body, acct, user, now):  # noqa: N802
        return self.market.l2_book(str(body.get("coin", "")), now)

    def _info_candleSnapshot(self, body, acct, user, now):  # noqa: N802
        r = body.get("req") or {}
        iv = str(r.get("interval", "1m"))
        interval_ms(iv)  # an unknown interval is a body the exchange cannot read
        return self.market.candle_snapshot(str(r.get("coin", "")), iv, int(r.get("startTime", 0)),
                                           int(r.get("endTime") or now))

    def _info_fundingHistory(self, body, acct, user, now):  # noqa: N802
        end = body.get("endTime")
        return self.market.funding_history(str(body.get("coin", "")), int(body.get("startTime", 0)),
                                           int(end) if end is not None else None)

    # --- account ---------------------------------------------------------------------------
    def _info_clearinghouseState(self, body, acct, user, now):  # noqa: N802
        return clearinghouse(acct, now, self.venue_config.maintenance_margin_fraction)

    def _info_spotClearinghouseState(self, body, acct, user, now):  # noqa: N802
        return {"balances": []}  # no spot wallet on the fake exchange

    def _info_openOrders(self, body, acct, user, now):  # noqa: N802
        return open_orders(acct, frontend=False) if acct else []

    def _info_frontendOpenOrders(self, body, acct, user, now):  # noqa: N802
        return open_orders(acct, frontend=True) if acct else []

    def _info_userFills(self, body, acct, user, now):  # noqa: N802
        return list(reversed(acct.fills[-USER_FILLS_CAP:])) if acct else []

    def _info_userFillsByTime(self, body, acct, user, now):  # noqa: N802
        if not acct:
            return []
        start, end = int(body.get("startTime", 0)), body.get("endTime")
        rows = [f for f in acct.fills if f["time"] >= start and (end is None or f["time"] <= int(end))]
        return rows[:USER_FILLS_CAP]

    def _info_userFunding(self, body, acct, user, now):  # noqa: N802
        if not acct:
            return []
        start, end = int(body.get("startTime", 0)), body.get("endTime")
        return [r for r in acct.fundings if r["time"] >= start and (end is None or r["time"] <= int(end))]

    def _info_userNonFundingLedgerUpdates(self, body, acct, user, now):  # noqa: N802
        if not acct:
            return []
        start, end = int(body.get("startTime", 0)), body.get("endTime")
        return [r for r in acct.ledger if r["time"] >= start and (end is None or r["time"] <= int(end))]

    def _info_orderStatus(self, body, acct, user, now):  # noqa: N802
        if acct is None:
            return {"status": "unknownOid"}
        oid = body.get("oid")
        o_id = acct.venue.oid_of(oid) if isinstance(oid, str) else (int(oid) if oid is not None else None)
        o = acct.venue.order_object(o_id) if o_id is not None else None
        if o is None or o_id not in acct.placed:
            return {"status": "unknownOid"}
        p = acct.placed[o_id]
        return {"status": "order", "order": {"order": frontend_order(acct, o, with_cloid_null=True),
                                             "status": status_wire(o), "statusTimestamp": p.status_ts}}

    def _info_historicalOrders(self, body, acct, user, now):  # noqa: N802
        if acct is None:
            return []
        out = []
        for oid in sorted(acct.placed, reverse=True)[:HISTORICAL_ORDERS_CAP]:
            o = acct.venue.order_object(oid)
            if o is not None:
                out.append({"order": frontend_order(acct, o, with_cloid_null=True), "status": status_wire(o),
                            "statusTimestamp": acct.placed[oid].status_ts})
        return out

    def _info_portfolio(self, body, acct, user, now):  # noqa: N802
        """Account value and PnL history per window, from the values the fake recorded
        at every fill, funding payment and transfer of the account."""
        hist = list(acct.history) if acct else []
        if acct:
            hist.append((now, acct.venue.equity(), acct.venue.equity() - acct.deposited))
        vlm = sum(float(f["px"]) * float(f["sz"]) for f in acct.fills) if acct else 0.0
        out = []
        for prefix in ("", "perp"):
            for name, span in PORTFOLIO_WINDOWS:
                rows = [h for h in hist if span is None or h[0] >= now - span]
                key = name if not prefix else prefix + name[0].upper() + name[1:]
                out.append([key, {"accountValueHistory": [[t, num(v)] for t, v, _ in rows],
                                  "pnlHistory": [[t, num(p)] for t, _, p in rows], "vlm": num(vlm)}])
        return out

    def _info_userFees(self, body, acct, user, now):  # noqa: N802
        c = self.venue_config
        return {"dailyUserVlm": [], "feeSchedule": {"cross": num(c.taker_fee), "add": num(c.maker_fee),
                                                     "spotCross": num(c.taker_fee), "spotAdd": num(c.maker_fee),
                                                     "tiers": {"vip": [], "mm": []}, "referralDiscount": "0.0",
                                                     "stakingDiscountTiers": []},
                "userCrossRate": num(c.taker_fee), "userAddRate": num(c.maker_fee),
                "userSpotCrossRate": num(c.taker_fee), "userSpotAddRate": num(c.maker_fee),
                "activeReferralDiscount": "0.0", "trial": None, "feeTrialReward": "0.0",
                "nextTrialAvailableTimestamp": None, "stakingLink": None, "activeStakingDiscount": None}

    def _info_userRateLimit(self, body, acct, user, now):  # noqa: N802
        used = acct.n_requests if acct else 0
        vol = acct.volume if acct else 0.0
        return {"cumVlm": num(vol), "nRequestsUsed": used, "nRequestsCap": 10_000 + int(vol)}

    def _info_userRole(self, body, acct, user, now):  # noqa: N802
        if user in self.sub_accounts:
            return {"role": "subAccount", "data": {"master": self.sub_accounts[user]}}
        if user in self.agents:
            return {"role": "agent", "data": {"user": self.agents[user]}}
        if acct is not None:
            return {"role": "user"}
        return {"role": "missing"}

    def _info_extraAgents(self, body, acct, user, now):  # noqa: N802
        return [{"name": name, "address": agent, "validUntil": until}
                for agent, (master, name, until) in self.agent_info.items() if master == user and name]

    def _info_subAccounts(self, body, acct, user, now):  # noqa: N802
        subs = [s for s, m in self.sub_accounts.items() if m == user]
        if not subs:
            return None
        return [{"name": self.sub_account_names.get(s, ""), "subAccountUser": s, "master": user,
                 "clearinghouseState": clearinghouse(self.accounts[s], now,
                                                     self.venue_config.maintenance_margin_fraction),
                 "spotState": {"balances": []}} for s in subs]

    def _info_referral(self, body, acct, user, now):  # noqa: N802
        code = self.referrers.get(user)
        return {"referredBy": {"referrer": None, "code": code} if code else None,
                "cumVlm": num(acct.volume if acct else 0.0), "unclaimedRewards": "0.0",
                "claimedRewards": "0.0", "builderRewards": "0.0",
                "referrerState": {"stage": "needToTrade", "data": {"required": "$10,000"}},
                "rewardHistory": []}

    def _info_userToMultiSigSigners(self, body, acct, user, now):  # noqa: N802
        return None  # no multi-sig users on the fake exchange

    # --- what an account here never has -------------------------------------------------------
    def _info_userTwapSliceFills(self, body, acct, user, now):  # noqa: N802
        return []

    def _info_userVaultEquities(self, body, acct, user, now):  # noqa: N802
        return []

    def _info_delegatorHistory(self, body, acct, user, now):  # noqa: N802
        return []

    def _info_delegations(self, body, acct, user, now):
        return []

    def _info_delegatorRewards(self, body, acct, user, now):  # noqa: N802
        return []

    def _info_delegatorSummary(self, body, acct, user, now):  # noqa: N802
        return {"delegated": "0.0", "undelegated": "0.0", "totalPendingWithdrawal": "0.0",
                "nPendingWithdrawals": 0}

