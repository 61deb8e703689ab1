"""Batched vs one-symbol-at-a-time inference: decisions per second, same model and data.

    .venv/bin/python bench/inference_throughput.py [--symbols 50] [--days 0.5] [--model PATH]

Two backtests of ``strategies/ml_classifier.py`` on the same generated universe
(``--symbols`` symbols GEN000.., ``--days`` of 1-minute candles, the synthetic
sentiment series) with the same skops model: ``MLClassifier`` (``decide_batch``:
one ``predict_proba`` for every symbol that closed a bar) and
``MLClassifierPerSymbol`` (``decide``: one ``predict_proba`` per symbol and bar).
Printed: decisions, model calls, loop seconds and decisions per second of each,
and the ratio batched / per-symbol. Both runs must produce identical intents,
orders and fills (checked). So that the risk engine cannot tell the two apart, its
order-rate limit is lifted and each symbol's size is ``min(2000, 100000 / symbols)``
USD, keeping gross exposure under its limit (a binding limit that adds up over
symbols clips by the other symbols' prices, which a batch sees all updated).
Numbers depend on the machine, the ratio less so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--symbols", type=int, default=50)
    ap.add_argument("--days", type=float, default=0.5)
    ap.add_argument("--model", default=None, help="skops model (default: the bundled one)")
    args = ap.parse_args(argv)

    from hlquant.audit.log import payloads
    from hlquant.backtest.engine import Backtest
    from hlquant.config.spec import KernelSpec
    from hlquant.connectors.synthetic import SyntheticSentimentConnector
    from hlquant.data.generate import generate
    from hlquant.risk.engine import RiskConfig
    from strategies.ml_classifier import MLClassifier, MLClassifierPerSymbol

    market = generate(n_symbols=args.symbols, days=args.days, seed=7, with_trades=False, with_l2=False)
    sentiment = SyntheticSentimentConnector().history(market)
    risk = RiskConfig(max_orders_per_s=1e6, order_burst=10**6)
    rows = {}
    records = {}
    for label, cls in (("batched", MLClassifier), ("per symbol", MLClassifierPerSymbol)):
        from hlquant.agents.base import AgentConfig

        size = min(2_000.0, 100_000.0 / args.symbols)
        agent = cls(AgentConfig("classifier", tuple(market.symbols),
                                params={"model_path": args.model, "size_usd": size}))
        spec = KernelSpec(agents=[agent], risk=risk, staleness={"default": 500, "sentiment*": 300_000})
        bt = Backtest(market, spec=spec, signals=sentiment)
        res = bt.run()
        counts = res.stats["agents"]
        loop = res.stats["loop_seconds"]
        rows[label] = (counts["decisions"], agent.calls, loop, counts["decisions"] / loop)
        recs = [{k: v for k, v in r.items() if k != "seq"} for r in payloads(res.audit.frame())]
        records[label] = {k: [r for r in recs if r["kind"] == k] for k in ("Intent", "RiskDecision", "Fill")}
    same = records["batched"] == records["per symbol"]
    print(f"{args.symbols} symbols x {args.days} days of 1-minute bars, {len(sentiment):,} sentiment rows")
    print(f"{'':>12} {'decisions':>10} {'model calls':>12} {'loop s':>8} {'decisions/s':>12}")
    for label, (d, calls, loop, rate) in rows.items():
        print(f"{label:>12} {d:>10,} {calls:>12,} {loop:>8.2f} {rate:>12,.0f}")
    ratio = rows["batched"][3] / rows["per symbol"][3]
    n = {k: len(v) for k, v in records["batched"].items()}
    print(f"batched / per symbol: {ratio:.1f}x decisions per second; identical intents, decisions, fills: "
          f"{same} ({n})")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
