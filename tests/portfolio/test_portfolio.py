import pytest

from hlquant.core.events import Fill, FundingPayment, Side
from hlquant.portfolio.portfolio import Portfolio


def fill(side, px, sz, fee=0.0, sym="BTC", agent="a"):
    return Fill(0, 0, sym, "0x" + "0" * 32, 1, side, px, sz, fee, "taker", agent=agent)


def test_open_add_reduce_flip_close():
    p = Portfolio(1000.0)
    p.on_fill(fill(Side.BUY, 100.0, 1.0, fee=0.1))
    p.on_fill(fill(Side.BUY, 110.0, 1.0, fee=0.1))
    pos = p.positions["BTC"]
    assert pos.size == pytest.approx(2.0)
    assert pos.entry_px == pytest.approx(105.0)
    realized = p.on_fill(fill(Side.SELL, 120.0, 0.5))
    assert realized == pytest.approx(0.5 * 15.0)
    assert pos.entry_px == pytest.approx(105.0)  # reducing keeps the entry
    realized = p.on_fill(fill(Side.SELL, 100.0, 3.0))  # close 1.5, open short 1.5
    assert realized == pytest.approx(1.5 * -5.0)
    assert pos.size == pytest.approx(-1.5)
    assert pos.entry_px == pytest.approx(100.0)
    p.mark("BTC", 90.0)
    assert p.unrealized() == pytest.approx(15.0)
    assert p.equity() == pytest.approx(1000 + 7.5 - 7.5 + 15.0 - 0.2)
    p.on_fill(fill(Side.BUY, 90.0, 1.5))
    assert pos.size == 0.0 and pos.entry_px == 0.0
    assert p.realized() == pytest.approx(7.5 - 7.5 + 15.0)


def test_funding_is_separate_from_trading_pnl():
    p = Portfolio(1000.0)
    p.on_fill(fill(Side.BUY, 100.0, 2.0, fee=0.09))
    p.on_funding(FundingPayment(0, 0, "BTC", 0.0001, 2.0, 100.0, -0.02))
    assert p.funding() == pytest.approx(-0.02)
    assert p.fees() == pytest.approx(0.09)
    assert p.equity() == pytest.approx(1000 - 0.09 - 0.02)
    assert p.gross_exposure() == pytest.approx(200.0)
    assert p.leverage() == pytest.approx(200.0 / p.equity())


def test_agent_attribution_and_reconcile():
    p = Portfolio()
    p.on_fill(fill(Side.BUY, 100.0, 1.0, fee=1.0, agent="x"))
    p.on_fill(fill(Side.SELL, 110.0, 1.0, fee=1.0, agent="y"))
    assert p.agent_realized == {"x": 0.0, "y": pytest.approx(10.0)}
    assert p.agent_fees == {"x": 1.0, "y": 1.0}
    assert p.reconcile({"BTC": 0.0}) == {}
    assert p.reconcile({"BTC": 1.0}) == {"BTC": (0.0, 1.0)}
