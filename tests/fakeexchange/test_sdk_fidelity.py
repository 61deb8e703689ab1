"""The official hyperliquid-python-sdk, pointed at the fake exchange, works unchanged."""

from __future__ import annotations

import time

import pytest
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.types import Cloid

from hlquant.core.events import BookSnapshot, Side, Trade
from hlquant.fakeexchange.testing import running_fake_exchange


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture()
def fx():
    with running_fake_exchange() as fx:
        t = now_ms()
        fx.server.publish(BookSnapshot(t, t, "BTC", [(99_990.0, 2.0), (99_980.0, 3.0)],
                                       [(100_010.0, 2.0), (100_020.0, 3.0)]))
        fx.server.publish(BookSnapshot(t, t, "ETH", [(2_999.0, 20.0)], [(3_001.0, 20.0)]))
        yield fx


def test_info_meta_and_l2_snapshot_parse_in_the_sdk(fx):
    info = Info(fx.url, skip_ws=True)
    assert info.coin_to_asset["BTC"] == 0 and info.coin_to_asset["SOL"] == 5
    assert info.asset_to_sz_decimals[0] == 5
    book = info.l2_snapshot("BTC")
    assert book["coin"] == "BTC"
    assert book["levels"][0][0] == {"px": "99990.0", "sz": "2.0", "n": 1}
    assert float(info.all_mids()["BTC"]) == pytest.approx(100_000.0)
    meta, ctxs = info.meta_and_asset_ctxs()
    assert len(meta["universe"]) == len(ctxs)


def test_agent_signed_orders_modify_cancel_keyed_by_master(fx):
    agent = Account.from_key(fx.agent_key)
    ex = Exchange(agent, fx.url, account_address=fx.master)
    info = Info(fx.url, skip_ws=True)

    r = ex.order("BTC", True, 0.01, 99_000.0, {"limit": {"tif": "Gtc"}})
    assert r["status"] == "ok", r
    oid = r["response"]["data"]["statuses"][0]["resting"]["oid"]
    oo = info.open_orders(fx.master)
    assert [o["oid"] for o in oo] == [oid] and oo[0]["limitPx"] == "99000.0"
    assert info.open_orders(fx.agent) == []  # the agent holds nothing: the master does

    r = ex.modify_order(oid, "BTC", True, 0.02, 99_500.0, {"limit": {"tif": "Gtc"}})
    assert r["status"] == "ok", r
    oo = info.open_orders(fx.master)
    assert len(oo) == 1 and oo[0]["oid"] != oid and oo[0]["sz"] == "0.02"  # new oid after modify
    new_oid = oo[0]["oid"]

    r = ex.cancel("BTC", new_oid)
    assert r["response"]["data"]["statuses"] == ["success"]
    r = ex.cancel("BTC", new_oid)
    assert r["response"]["data"]["statuses"] == [
        {"error": "Order was never placed, already canceled, or filled."}]

    cloid = Cloid.from_str("0x" + "ab" * 16)
    r = ex.order("ETH", False, 0.5, 3_100.0, {"limit": {"tif": "Gtc"}}, cloid=cloid)
    assert r["response"]["data"]["statuses"][0]["resting"]["cloid"] == cloid.to_raw()
    st = info.query_order_by_cloid(fx.master, cloid)
    assert st["status"] == "order" and st["order"]["status"] == "open"
    assert st["order"]["order"]["cloid"] == cloid.to_raw()
    r = ex.cancel_by_cloid("ETH", cloid)
    assert r["response"]["data"]["statuses"] == ["success"]
    assert info.query_order_by_cloid(fx.master, cloid)["order"]["status"] == "canceled"


def test_fills_positions_and_balances_arrive_for_an_agent_session(fx):
    agent = Account.from_key(fx.agent_key)
    ex = Exchange(agent, fx.url, account_address=fx.master)
    info = Info(fx.url, skip_ws=True)
    r = ex.order("BTC", True, 0.05, 100_100.0, {"limit": {"tif": "Ioc"}})
    filled = r["response"]["data"]["statuses"][0]["filled"]
    assert filled["totalSz"] == "0.05" and float(filled["avgPx"]) == 100_010.0
    state = info.user_state(fx.master)
    pos = state["assetPositions"][0]["position"]
    assert pos["coin"] == "BTC" and pos["szi"] == "0.05" and float(pos["entryPx"]) == 100_010.0
    assert float(state["marginSummary"]["accountValue"]) > 99_000  # balance is not 0
    fills = info.user_fills(fx.master)
    assert len(fills) == 1 and fills[0]["oid"] == filled["oid"] and fills[0]["side"] == "B"
    t0 = fills[0]["time"]
    assert info.user_fills_by_time(fx.master, t0 - 1)[0]["tid"] == fills[0]["tid"]
    assert info.user_state(fx.agent)["assetPositions"] == []


def test_exchange_rules_in_one_batch(fx):
    agent = Account.from_key(fx.agent_key)
    ex = Exchange(agent, fx.url, account_address=fx.master)
    reqs = [
        {"coin": "BTC", "is_buy": True, "sz": 0.01, "limit_px": 99_000.0, "order_type": {"limit": {"tif": "Gtc"}},
         "reduce_only": False},
        {"coin": "BTC", "is_buy": True, "sz": 0.01, "limit_px": 100_010.0, "order_type": {"limit": {"tif": "Alo"}},
         "reduce_only": False},
        {"coin": "BTC", "is_buy": False, "sz": 0.01, "limit_px": 99_000.0, "order_type": {"limit": {"tif": "Gtc"}},
         "reduce_only": True},
        {"coin": "BTC", "is_buy": True, "sz": 0.0001, "limit_px": 99_000.0, "order_type": {"limit": {"tif": "Gtc"}},
         "reduce_only": False},
    ]
    st = ex.bulk_orders(reqs)["response"]["data"]["statuses"]
    assert "resting" in st[0]
    assert st[1]["error"].startswith("Post only order would have immediately matched")
    assert st[2] == {"error": "Reduce only order would increase position. asset=0"}
    assert st[3] == {"error": "Order must have minimum value of $10."}


def test_unapproved_signer_and_replayed_nonce_are_rejected(fx):
    stranger = Account.create()
    r = Exchange(stranger, fx.url, account_address=fx.master).order(
        "BTC", True, 0.01, 99_000.0, {"limit": {"tif": "Gtc"}})
    assert r["status"] == "err" and "does not exist" in r["response"]

    import requests

    from hlquant.hyperliquid.signing import sign_l1_action
    from hlquant.hyperliquid.wire import order_action, order_to_wire, order_type_to_wire

    agent = Account.from_key(fx.agent_key)
    action = order_action([order_to_wire(0, True, 0.01, 99_000.0, False, order_type_to_wire(None))])
    nonce = now_ms()
    body = {"action": action, "nonce": nonce, "vaultAddress": None,
            "signature": sign_l1_action(agent, action, None, nonce, None, False)}
    assert requests.post(fx.url + "/exchange", json=body).json()["status"] == "ok"
    again = requests.post(fx.url + "/exchange", json=body).json()
    assert again["status"] == "err" and "nonce" in again["response"]
    old = nonce - 3 * 86_400_000
    body.update(nonce=old, signature=sign_l1_action(agent, action, None, old, None, False))
    assert "outside the allowed window" in requests.post(fx.url + "/exchange", json=body).json()["response"]


def test_ip_weight_budget_answers_429(fx):
    import requests
    from hyperliquid.utils.error import ClientError

    fx.server.faults.weight_per_min = 50
    info = Info(fx.url, skip_ws=True)  # spotMeta + meta = 40 weight
    with pytest.raises(ClientError) as e:
        for _ in range(10):
            info.l2_snapshot("BTC")  # 2 each
    assert e.value.status_code == 429
    assert requests.post(fx.url + "/info", json={"type": "allMids"}).status_code == 429


def test_sdk_websocket_subscriptions_receive_market_and_user_data(fx):
    got: dict[str, list] = {"l2": [], "trades": [], "fills": [], "orders": []}
    info = Info(fx.url, skip_ws=False)
    try:
        info.subscribe({"type": "l2Book", "coin": "BTC"}, got["l2"].append)
        info.subscribe({"type": "trades", "coin": "BTC"}, got["trades"].append)
        info.subscribe({"type": "userFills", "user": fx.master}, got["fills"].append)
        info.subscribe({"type": "orderUpdates", "user": fx.master}, got["orders"].append)
        deadline = time.time() + 5
        while time.time() < deadline and not (got["l2"] and got["fills"]):
            time.sleep(0.05)
        t = now_ms()
        fx.server.publish(Trade(t, t, "BTC", Side.SELL, 99_995.0, 0.3, 77))
        ex = Exchange(Account.from_key(fx.agent_key), fx.url, account_address=fx.master)
        ex.order("BTC", True, 0.02, 100_100.0, {"limit": {"tif": "Ioc"}})
        deadline = time.time() + 5
        while time.time() < deadline and not (got["trades"] and len(got["fills"]) >= 2 and got["orders"]):
            time.sleep(0.05)
    finally:
        info.disconnect_websocket()
    assert got["l2"][0]["data"]["coin"] == "BTC"
    assert got["trades"][0]["data"][0]["tid"] == 77
    assert got["fills"][0]["data"]["isSnapshot"] is True
    live = got["fills"][1]["data"]
    assert live["user"] == fx.master.lower() and live["fills"][0]["sz"] == "0.02"
    assert got["orders"][0]["data"][0]["status"] == "filled"


def test_command_starts_replays_and_serves(tmp_path):
    import json
    import signal
    import subprocess
    import sys

    from hlquant.fakeexchange.testing import free_port

    port = free_port()
    keys = tmp_path / "keys.json"
    p = subprocess.Popen([sys.executable, "-m", "hlquant.fakeexchange", "--port", str(port), "--speed", "0",
                          "--keys-out", str(keys)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        mids = {}
        while time.time() < deadline and "SOL" not in mids:
            time.sleep(0.2)
            try:
                mids = Info(f"http://127.0.0.1:{port}", skip_ws=True).all_mids()
            except Exception:
                continue
        assert {"BTC", "ETH", "SOL"} <= set(mids)
        k = json.loads(keys.read_text())
        assert k["url"].endswith(str(port)) and (keys.stat().st_mode & 0o777) == 0o600
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    assert k["agent_key"][2:] not in out + err  # keys go to the file only
