"""REST info client: typed answers, weight accounting, cached meta, pagination.

Every request is charged to the IP weight budget before it is sent (so a
burst waits instead of earning a 429), list answers pay their per-item cost
after, and ``meta`` is cached for a short TTL because every order needs it.
``candles`` pages past the per-request cap by walking ``startTime`` forward.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests

from hlquant.core.assets import AssetSpec
from hlquant.core.errors import ExchangeError, RateLimitError
from hlquant.core.events import Candle, ErrorCode, Fill, FundingPayment, FundingRate
from hlquant.hyperliquid import normalize as nz
from hlquant.hyperliquid.endpoints import MAINNET_URL, TESTNET_URL  # noqa: F401 (re-exported)
from hlquant.hyperliquid.errors import UnavailableError, UnknownOutcomeError
from hlquant.hyperliquid.limits import WeightLimiter, info_weight, items_weight
from hlquant.hyperliquid.normalize import FrontendOrder, HistoricalOrder, PortfolioPeriod

CANDLE_PAGE = 5000
INTERVAL_MS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
               "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "8h": 28_800_000,
               "12h": 43_200_000, "1d": 86_400_000}


@dataclass(frozen=True)
class PositionInfo:
    """One position of ``clearinghouseState``. ``leverage_type`` is "cross" or
    "isolated"; for an isolated position ``raw_usd`` is its USDC balance as the
    exchange reports it (its value is ``raw_usd + size x mark``), else 0."""

    coin: str
    size: float
    entry_px: float
    unrealized_pnl: float
    margin_used: float
    leverage: int
    liquidation_px: float | None
    leverage_type: str = "cross"
    raw_usd: float = 0.0


@dataclass(frozen=True)
class AccountInfo:
    account_value: float
    margin_used: float
    withdrawable: float
    positions: dict[str, PositionInfo]
    time: int


@dataclass(frozen=True)
class OpenOrder:
    coin: str
    oid: int
    side: str
    limit_px: float
    sz: float
    timestamp: int
    cloid: str


class InfoClient:
    def __init__(self, base_url: str = TESTNET_URL, limiter: WeightLimiter | None = None,
                 timeout: float = 10.0, meta_ttl_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter or WeightLimiter()
        self.timeout = timeout
        self.meta_ttl_s = meta_ttl_s
        self.session = requests.Session()
        self._meta: tuple[float, dict[str, Any]] | None = None
        self.requests = 0

    def post(self, body: dict[str, Any]) -> Any:
        t = body.get("type", "")
        self.limiter.acquire(info_weight(t))
        self.requests += 1
        try:
            r = self.session.post(self.base_url + "/info", json=body, timeout=self.timeout)
        except requests.ConnectTimeout as e:
            raise UnavailableError(f"info {t}: cannot connect to {self.base_url}: {e}") from e
        except requests.RequestException as e:
            raise UnknownOutcomeError(f"info {t}: no reply: {e}") from e
        if r.status_code == 429:
            self.limiter.penalize()
            raise RateLimitError(f"info {t}: rate limited (429)", 429)
        if r.status_code >= 500:
            raise UnknownOutcomeError(f"info {t}: HTTP {r.status_code}: {r.text[:300]}", r.status_code)
        if r.status_code >= 400:
            raise ExchangeError(f"info {t}: HTTP {r.status_code}: {r.text[:300]}", r.status_code,
                                ErrorCode.BAD_REQUEST)
        try:
            out = r.json()
        except ValueError as e:
            raise UnknownOutcomeError(f"info {t}: unreadable reply: {r.text[:300]}", r.status_code) from e
        if isinstance(out, list):
            extra = items_weight(t, len(out))
            if extra:
                self.limiter.charge(extra)
        return out

    # --- market ------------------------------------------------------------
    def meta(self, fresh: bool = False) -> dict[str, Any]:
        now = time.monotonic()
        if not fresh and self._meta is not None and now - self._meta[0] < self.meta_ttl_s:
            return self._meta[1]
        m = self.post({"type": "meta"})
        self._meta = (now, m)
        return m

    def assets(self) -> dict[str, AssetSpec]:
        """AssetSpec per coin from meta (asset id = index in the universe)."""
        return {a["name"]: AssetSpec(a["name"], i, int(a["szDecimals"]), int(a.get("maxLeverage", 50)))
                for i, a in enumerate(self.meta()["universe"])}

    def meta_and_asset_ctxs(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        meta, ctxs = self.post({"type": "metaAndAssetCtxs"})
        return meta, ctxs

    def all_mids(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.post({"type": "allMids"}).items()}

    def l2_book(self, coin: str, recv: int | None = None):
        d = self.post({"type": "l2Book", "coin": coin})
        if d is None:
            raise ExchangeError(f"no book for {coin}")
        return nz.l2_book(d, recv if recv is not None else _now())

    def candles(self, coin: str, interval: str, start: int, end: int) -> list[Candle]:
        """All candles in [start, end], paging ``CANDLE_PAGE`` at a time."""
        step = INTERVAL_MS[interval]
        out: list[Candle] = []
        cursor = start
        while cursor <= end:
            page = self.post({"type": "candleSnapshot", "req": {"coin": coin, "interval": interval,
                                                                 "startTime": cursor, "endTime": end}})
            if not page:
                break
            recv = _now()
            out.extend(nz.candle(c, recv) for c in page)
            last_open = int(page[-1]["t"])
            if last_open + step <= cursor:
                break
            cursor = last_open + step
            if len(page) < CANDLE_PAGE and cursor > end - step:
                break
        dedup: dict[int, Candle] = {c.ts_open: c for c in out}
        return [dedup[k] for k in sorted(dedup)]

    def funding_history(self, coin: str, start: int, end: int | None = None) -> list[FundingRate]:
        out: list[FundingRate] = []
        cursor = start
        while True:
            body: dict[str, Any] = {"type": "fundingHistory", "coin": coin, "startTime": cursor}
            if end is not None:
                body["endTime"] = end
            rows = self.post(body)
            if not rows:
                break
            out.extend(nz.funding_history(rows, _now()))
            nxt = int(rows[-1]["time"]) + 1
            if nxt <= cursor or (end is not None and nxt > end):
                break
            cursor = nxt
        return out

    # --- user (always the master account's address) --------------------------
    def clearinghouse_state(self, user: str) -> AccountInfo:
        d = self.post({"type": "clearinghouseState", "user": user})
        positions = {}
        for ap in d.get("assetPositions", []):
            p = ap["position"]
            liq = p.get("liquidationPx")
            lev = p.get("leverage") or {}
            positions[p["coin"]] = PositionInfo(p["coin"], float(p["szi"]), float(p.get("entryPx") or 0.0),
                                                float(p.get("unrealizedPnl", 0.0)), float(p.get("marginUsed", 0.0)),
                                                int(lev.get("value", 1)),
                                                float(liq) if liq is not None else None,
                                                str(lev.get("type", "cross")), float(lev.get("rawUsd") or 0.0))
        ms = d["marginSummary"]
        return AccountInfo(float(ms["accountValue"]), float(ms["totalMarginUsed"]),
                           float(d.get("withdrawable", 0.0)), positions, int(d.get("time", 0)))

    def open_orders(self, user: str) -> list[OpenOrder]:
        return [OpenOrder(o["coin"], int(o["oid"]), o["side"], float(o["limitPx"]), float(o["sz"]),
                          int(o["timestamp"]), o.get("cloid") or "")
                for o in self.post({"type": "openOrders", "user": user})]

    def user_fills(self, user: str) -> list[Fill]:
        recv = _now()
        return [nz.fill(f, recv) for f in self.post({"type": "userFills", "user": user})]

    def user_fills_by_time(self, user: str, start: int, end: int | None = None) -> list[Fill]:
        body: dict[str, Any] = {"type": "userFillsByTime", "user": user, "startTime": start}
        if end is not None:
            body["endTime"] = end
        recv = _now()
        return [nz.fill(f, recv) for f in self.post(body)]

    def frontend_open_orders(self, user: str) -> list[FrontendOrder]:
        """Open orders with their trigger details and tp/sl children."""
        return [nz.frontend_order(o) for o in self.post({"type": "frontendOpenOrders", "user": user})]

    def historical_orders(self, user: str) -> list[HistoricalOrder]:
        """The most recent orders (up to 2,000) with their final or current status."""
        return [nz.historical_order(h) for h in self.post({"type": "historicalOrders", "user": user})]

    def user_funding(self, user: str, start: int, end: int | None = None) -> list[FundingPayment]:
        """Funding payments of the account in [start, end] (REST rows nest them under ``delta``)."""
        body: dict[str, Any] = {"type": "userFunding", "user": user, "startTime": start}
        if end is not None:
            body["endTime"] = end
        recv = _now()
        return [nz.user_funding(r, recv) for r in self.post(body)]

    def portfolio(self, user: str) -> dict[str, PortfolioPeriod]:
        """Account value and PnL history per window ("day", "week", "month", "allTime", "perpDay"...)."""
        return nz.portfolio(self.post({"type": "portfolio", "user": user}))

    def order_status(self, user: str, oid: int | str) -> dict[str, Any] | None:
        """The order record (``{"order":..,"status":..}``) or None when unknown."""
        d = self.post({"type": "orderStatus", "user": user, "oid": oid})
        return d.get("order") if d.get("status") == "order" else None

    def user_rate_limit(self, user: str) -> dict[str, Any]:
        return self.post({"type": "userRateLimit", "user": user})


def _now() -> int:
    return int(time.time() * 1000)
