"""Parity report: a paper or live session beside its backtest on the very same events.

(In ``promote``: like the pre-flight check it runs the backtest and reads what the live
side recorded, so it sits above both.)

``hlquant parity RUN_DIR`` takes a session folder (``session.json`` with the
config, the audit log, and the market events recorded as the session received
them, ``market/``), re-runs the same strategy and config through the backtest
on exactly those events, and puts the two side by side:

- decisions (intents), orders and fills, matched decision by decision: a
  decision is the same one when the same agent decided on the same symbol on
  the same market event (for the session: the event it was applying when the
  intent was recorded, from ``market/*/arrivals.parquet``); orders follow their
  intent, fills their order;
- per matched fill: the time difference (market time the session's order
  executed at minus the backtest's), the price difference and slippage in bps,
  the size difference;
- latency: decision-to-ack as the session measured it (``latency.csv``) and
  event-to-exchange (from the exchange time of the event a decision was taken
  on to the market time its order executed at: for a live session the
  exchange's fill time, for a paper session the last event applied before the
  fill). The event-to-exchange samples are written to ``latency_samples.csv``,
  ready for a backtest: ``venue.latency=empirical venue.latency_file=...``;
- the PnL gap, attributed to its causes by changing one thing at a time:
  ``latency`` = the backtest re-run with the measured latency distribution minus
  the backtest as configured; then, against that latency-aware backtest, the
  ``fill_model`` (price differences of matched fills), ``fees``, ``funding``,
  ``missed_extra_fills`` (fills one side has and the other has not, and size
  differences), and ``marks`` (the session's own equity-based PnL minus the same
  fills valued at the common final marks). The components add up to the gap
  exactly.

PnL of a run here = sum over its fills of ``side * size * (final mark - price)``
minus fees plus funding, with the same final mark per symbol for every run
(the backtest's last price of that symbol), so runs are compared on what they
traded, not on when each stopped marking.

Output (``RUN_DIR/parity/`` unless ``--out``): ``parity.html`` (plots and the
side-by-side tables), ``parity.json`` (the summary), ``latency_samples.csv``,
``decisions.csv``, ``fills.csv``.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hlquant.audit.log import read_audit
from hlquant.core.assets import DEFAULT_ASSETS, AssetSpec
from hlquant.core.errors import ConfigError
from hlquant.live.recording import Recording, load_recording
from hlquant.venues.sim.latency import SAMPLE_COLUMN, summary

COMPONENTS = ("latency", "fill_model", "fees", "funding", "missed_extra_fills", "marks")
PX_TOL = 1e-9  # relative: prices equal within this are the same fill price


@dataclass
class RunRecord:
    """One run (the session or a backtest) in comparable form."""

    name: str
    intents: pd.DataFrame  # seq, intent_id, agent, symbol, t, t_mkt, target, side, size, px
    orders: pd.DataFrame  # cloid, intent_id, agent, symbol, side, size, px, tif, t
    fills: pd.DataFrame  # per order: cloid, symbol, agent, side, sz, px, fee, t_mkt, n
    funding: float = 0.0
    equity_net: float | None = None  # the run's own equity-based net PnL, when known
    marks: dict[str, float] = field(default_factory=dict)

    @property
    def fees(self) -> float:
        return float(self.fills["fee"].sum()) if len(self.fills) else 0.0

    def pnl(self, marks: dict[str, float]) -> float:
        return fills_pnl(self.fills, marks) - self.fees + self.funding


def fills_pnl(fills: pd.DataFrame, marks: dict[str, float]) -> float:
    """Trading PnL of fills valued at ``marks``: sum of side * size * (mark - price)."""
    if not len(fills):
        return 0.0
    m = fills["symbol"].map(marks).astype(float).fillna(fills["px"])
    return float((fills["side"] * fills["sz"] * (m - fills["px"])).sum())


# ---------------------------------------------------------------------------- reading runs
def _rows(audit: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for r in audit.itertuples(index=False):
        d = json.loads(r.payload)
        d.update(seq=int(r.seq), kind=r.kind, ts_exch=int(r.ts_exch), ts_recv=int(r.ts_recv), agent=r.agent,
                 symbol=r.symbol)
        out.append(d)
    return out


def _num(v: Any) -> bool:
    """A number (not None, not NaN: pandas turns a missing value into NaN)."""
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _side(v: Any) -> int:
    return 1 if v in ("BUY", 1, "1") else -1


def _trigger_times(seqs: np.ndarray, arrivals: pd.DataFrame | None) -> np.ndarray:
    """Exchange time of the market event being applied when each audit seq was written."""
    if arrivals is None or not len(arrivals) or not len(seqs):
        return np.full(len(seqs), -1, np.int64)
    a_seq = arrivals["audit_seq"].to_numpy()
    a_ts = arrivals["ts_exch"].to_numpy()
    j = np.searchsorted(a_seq, seqs, side="left") - 1
    return np.where(j >= 0, a_ts[np.clip(j, 0, None)], -1).astype(np.int64)


def run_record(name: str, audit: pd.DataFrame, arrivals: pd.DataFrame | None = None,
               exchange_times: bool = True) -> RunRecord:
    """A run from its audit frame. ``arrivals`` (sessions): decisions and fills get the market
    time of the event being applied when they were recorded. ``exchange_times``: a fill's
    market time is its own ``ts_exch`` (backtests, live sessions: the exchange's clock);
    otherwise (paper sessions) the last market event applied before it."""
    rows = _rows(audit)
    intents = [r for r in rows if r["kind"] == "Intent"]
    iseq = np.array([r["seq"] for r in intents], np.int64)
    itrig = _trigger_times(iseq, arrivals)
    idf = pd.DataFrame({
        "seq": iseq, "intent_id": [r["intent_id"] for r in intents], "agent": [r["agent"] for r in intents],
        "symbol": [r["symbol"] for r in intents], "t": [r["ts_exch"] for r in intents],
        "t_mkt": np.where(itrig >= 0, itrig, [r["ts_exch"] for r in intents]) if len(intents) else [],
        "target": [r.get("target") for r in intents], "side": [r.get("side") for r in intents],
        "size": [r.get("size") for r in intents], "px": [r.get("px") for r in intents],
    }, columns=["seq", "intent_id", "agent", "symbol", "t", "t_mkt", "target", "side", "size", "px"])
    orders = pd.DataFrame([{"cloid": r["cloid"], "intent_id": r["intent_id"], "agent": r["agent"],
                            "symbol": r["symbol"], "side": _side(r["side"]), "size": float(r["size"]),
                            "px": r.get("px"), "tif": r.get("tif"), "t": r["ts_exch"]}
                           for r in rows if r["kind"] == "OrderRequest"],
                          columns=["cloid", "intent_id", "agent", "symbol", "side", "size", "px", "tif", "t"])
    frows = [r for r in rows if r["kind"] == "Fill"]
    fseq = np.array([r["seq"] for r in frows], np.int64)
    ftrig = _trigger_times(fseq, arrivals)
    per: dict[str, dict[str, Any]] = {}
    for r, tm in zip(frows, ftrig, strict=True):
        key = r.get("cloid") or f"tid:{r.get('tid')}"
        t_mkt = int(r["ts_exch"]) if exchange_times or tm < 0 else int(tm)
        f = per.get(key)
        if f is None:
            per[key] = {"cloid": key, "symbol": r["symbol"], "agent": r.get("agent") or "",
                        "side": _side(r["side"]), "sz": float(r["sz"]), "notional": float(r["sz"]) * float(r["px"]),
                        "fee": float(r["fee"]), "t_mkt": t_mkt, "n": 1}
        else:
            f["sz"] += float(r["sz"])
            f["notional"] += float(r["sz"]) * float(r["px"])
            f["fee"] += float(r["fee"])
            f["n"] += 1
    fills = pd.DataFrame(list(per.values()),
                         columns=["cloid", "symbol", "agent", "side", "sz", "notional", "fee", "t_mkt", "n"])
    fills["px"] = fills["notional"] / fills["sz"] if len(fills) else pd.Series(dtype=float)
    funding = float(sum(float(r.get("amount") or 0.0) for r in rows if r["kind"] == "FundingPayment"))
    return RunRecord(name, idf, orders, fills.drop(columns=["notional"]), funding)


# ---------------------------------------------------------------------------- matching
def match_decisions(a: pd.DataFrame, b: pd.DataFrame) -> list[tuple[int | None, int | None]]:
    """Pairs of row positions (a, b): the same decision when agent, symbol and the market
    event (time) agree; decisions that moved in time are paired in order when agent and
    symbol agree; the rest are unmatched (None on the other side)."""
    ka = list(zip(a["agent"], a["symbol"], a["t_mkt"], strict=True))
    kb = list(zip(b["agent"], b["symbol"], b["t_mkt"], strict=True))
    pairs: list[tuple[int | None, int | None]] = []
    sm = difflib.SequenceMatcher(None, ka, kb, autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            pairs += list(zip(range(i1, i2), range(j1, j2), strict=True))
            continue
        rest_b = list(range(j1, j2))
        for i in range(i1, i2):
            k = next((n for n, j in enumerate(rest_b) if kb[j][:2] == ka[i][:2]), None)
            if k is None:
                pairs.append((i, None))
            else:
                pairs.append((i, rest_b.pop(k)))
        pairs += [(None, j) for j in rest_b]
    return pairs


def _same_decision(x: pd.Series, y: pd.Series) -> bool:
    for c in ("target", "size", "px"):
        u, v = x[c], y[c]
        if _num(u) != _num(v):
            return False
        if _num(u) and not math.isclose(float(u), float(v), rel_tol=1e-9, abs_tol=1e-12):
            return False
    return x["side"] == y["side"]


@dataclass
class Comparison:
    """A run (``a``, the session) against a reference (``b``, a backtest)."""

    decisions: pd.DataFrame
    fills: pd.DataFrame
    counts: dict[str, int]


def compare(a: RunRecord, b: RunRecord) -> Comparison:
    ia = a.intents.sort_values(["t_mkt", "seq"], kind="stable").reset_index(drop=True)
    ib = b.intents.sort_values(["t_mkt", "seq"], kind="stable").reset_index(drop=True)
    drows, intent_pairs = [], []
    for i, j in match_decisions(ia, ib):
        x = ia.iloc[i] if i is not None else None
        y = ib.iloc[j] if j is not None else None
        status = "extra" if y is None else "missed" if x is None else "same" if _same_decision(x, y) else "differs"
        ref = x if x is not None else y
        drows.append({"status": status, "agent": ref["agent"], "symbol": ref["symbol"],
                      f"t_mkt_{a.name}": None if x is None else int(x["t_mkt"]),
                      f"t_mkt_{b.name}": None if y is None else int(y["t_mkt"]),
                      f"t_{a.name}": None if x is None else int(x["t"]),
                      f"target_{a.name}": None if x is None else x["target"],
                      f"target_{b.name}": None if y is None else y["target"],
                      f"intent_{a.name}": None if x is None else x["intent_id"],
                      f"intent_{b.name}": None if y is None else y["intent_id"]})
        if x is not None and y is not None:
            intent_pairs.append((x["intent_id"], y["intent_id"]))
    # orders follow their intent; fills their order
    oa = a.orders.groupby("intent_id")["cloid"].apply(list).to_dict() if len(a.orders) else {}
    ob = b.orders.groupby("intent_id")["cloid"].apply(list).to_dict() if len(b.orders) else {}
    cloid_pairs: list[tuple[str | None, str | None]] = []
    seen_a, seen_b = set(), set()
    for ia_id, ib_id in intent_pairs:
        ca, cb = oa.get(ia_id, []), ob.get(ib_id, [])
        for k in range(max(len(ca), len(cb))):
            pa = ca[k] if k < len(ca) else None
            pb = cb[k] if k < len(cb) else None
            cloid_pairs.append((pa, pb))
            seen_a.add(pa)
            seen_b.add(pb)
    fa = a.fills.set_index("cloid") if len(a.fills) else pd.DataFrame()
    fb = b.fills.set_index("cloid") if len(b.fills) else pd.DataFrame()
    frows = []
    used_a, used_b = set(), set()
    for pa, pb in cloid_pairs:
        xa = fa.loc[pa] if pa is not None and pa in fa.index else None
        xb = fb.loc[pb] if pb is not None and pb in fb.index else None
        if xa is None and xb is None:
            continue
        used_a.add(pa)
        used_b.add(pb)
        frows.append(_fill_row(a.name, b.name, xa, xb))
    for c in (set(fa.index) - used_a) if len(fa) else ():
        frows.append(_fill_row(a.name, b.name, fa.loc[c], None))
    for c in (set(fb.index) - used_b) if len(fb) else ():
        frows.append(_fill_row(a.name, b.name, None, fb.loc[c]))
    fills = pd.DataFrame(frows)
    if len(fills):
        fills = fills.sort_values(f"t_mkt_{a.name}", na_position="last", kind="stable").reset_index(drop=True)
    dec = pd.DataFrame(drows)
    counts = {f"decisions_{k}": int((dec["status"] == k).sum()) if len(dec) else 0
              for k in ("same", "differs", "missed", "extra")}
    for k in ("matched", "missed", "extra"):
        counts[f"fills_{k}"] = int((fills["status"] == k).sum()) if len(fills) else 0
    counts[f"orders_{a.name}"] = len(a.orders)
    counts[f"orders_{b.name}"] = len(b.orders)
    return Comparison(dec, fills, counts)


def _fill_row(na: str, nb: str, xa: pd.Series | None, xb: pd.Series | None) -> dict[str, Any]:
    ref = xa if xa is not None else xb
    row: dict[str, Any] = {"status": "matched" if xa is not None and xb is not None else
                           "extra" if xa is not None else "missed",
                           "symbol": ref["symbol"], "agent": ref["agent"], "side": int(ref["side"])}
    for n, x in ((na, xa), (nb, xb)):
        row[f"t_mkt_{n}"] = None if x is None else int(x["t_mkt"])
        row[f"px_{n}"] = None if x is None else float(x["px"])
        row[f"sz_{n}"] = None if x is None else float(x["sz"])
        row[f"fee_{n}"] = None if x is None else float(x["fee"])
    if xa is not None and xb is not None:
        row["dt_ms"] = int(xa["t_mkt"]) - int(xb["t_mkt"])
        row["dpx"] = float(xa["px"]) - float(xb["px"])
        row["slippage_bps"] = int(ref["side"]) * row["dpx"] / float(xb["px"]) * 1e4
        row["dsz"] = float(xa["sz"]) - float(xb["sz"])
    return row


# ---------------------------------------------------------------------------- attribution
def attribute(s: RunRecord, bt: RunRecord, bl: RunRecord, fills_vs_bl: pd.DataFrame,
              marks: dict[str, float], name_s: str = "session", name_bl: str = "backtest_latency") -> dict[str, float]:
    """The PnL gap session - backtest split into COMPONENTS (they sum to the gap exactly)."""
    pnl_s, pnl_b, pnl_bl = s.pnl(marks), bt.pnl(marks), bl.pnl(marks)
    price = size = 0.0
    for r in fills_vs_bl.itertuples(index=False):
        d = r._asdict()
        side = d["side"]
        mark = marks.get(d["symbol"], float("nan"))
        c_s = side * d[f"sz_{name_s}"] * (mark - d[f"px_{name_s}"]) if _num(d[f"px_{name_s}"]) else 0.0
        c_b = side * d[f"sz_{name_bl}"] * (mark - d[f"px_{name_bl}"]) if _num(d[f"px_{name_bl}"]) else 0.0
        if d["status"] == "matched":
            p = side * min(d[f"sz_{name_s}"], d[f"sz_{name_bl}"]) * (d[f"px_{name_bl}"] - d[f"px_{name_s}"])
            price += p
            size += (c_s - c_b) - p
        else:
            size += c_s - c_b
    marks_part = (s.equity_net - pnl_s) if s.equity_net is not None else 0.0
    return {
        "latency": pnl_bl - pnl_b,
        "fill_model": price,
        "fees": -(s.fees - bl.fees),
        "funding": s.funding - bl.funding,
        "missed_extra_fills": size,
        "marks": marks_part,
    }


# ---------------------------------------------------------------------------- the report
@dataclass
class ParityReport:
    summary: dict[str, Any]
    decisions: pd.DataFrame
    fills: pd.DataFrame
    fills_latency: pd.DataFrame
    latency_samples: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def agree(self) -> bool:
        return bool(self.summary["agree"])

    def __str__(self) -> str:
        s = self.summary
        a = s["attribution"]
        parts = ", ".join(f"{k} {v:+,.2f}" for k, v in a.items())
        head = "session and backtest AGREE" if s["agree"] else "session and backtest differ"
        return (f"{head}: decisions {s['counts']['decisions_same']} same / {s['counts']['decisions_differs']} "
                f"differ / {s['counts']['decisions_missed']} missed / {s['counts']['decisions_extra']} extra; "
                f"fills {s['counts']['fills_matched']} matched / {s['counts']['fills_missed']} missed / "
                f"{s['counts']['fills_extra']} extra\n"
                f"PnL session {s['pnl']['session']:+,.2f} vs backtest {s['pnl']['backtest']:+,.2f}: gap "
                f"{s['gap']:+,.2f} = {parts} (largest: {s['dominant']})")


def _session_info(run_dir: Path) -> dict[str, Any]:
    p = run_dir / "session.json"
    if not p.exists():
        raise ConfigError(f"{run_dir} has no session.json: not a paper or live session folder "
                          f"(a backtest folder is replayed with `hlquant replay`)")
    info = json.loads(p.read_text())
    if info.get("mode") not in ("paper", "live"):
        raise ConfigError(f"{p}: mode {info.get('mode')!r}; parity compares paper or live sessions")
    return info


def _backtest(cfg: dict[str, Any], market: Any, assets: dict[str, AssetSpec], venue: Any = None) -> Any:
    from hlquant.backtest.engine import Backtest
    from hlquant.config.spec import KernelSpec

    spec = KernelSpec.from_config(cfg, mode="sim")
    if venue is not None:
        spec.venue = venue
    bt = Backtest(market, spec=spec, assets=assets)
    return bt, bt.run()


def latency_samples(s: RunRecord, mode: str) -> pd.DataFrame:
    """Event-to-exchange latency per filled session order: market time its first fill executed
    at minus the exchange time of the event its decision was taken on."""
    if not len(s.fills) or not len(s.orders):
        return pd.DataFrame(columns=["cloid", "symbol", SAMPLE_COLUMN])
    t_dec = dict(zip(s.intents["intent_id"], s.intents["t_mkt"], strict=True))
    o = s.orders.drop_duplicates("cloid").set_index("cloid")
    rows = []
    for f in s.fills.itertuples(index=False):
        if f.cloid not in o.index:
            continue
        t0 = t_dec.get(o.loc[f.cloid, "intent_id"])
        if t0 is None:
            continue
        rows.append({"cloid": f.cloid, "symbol": f.symbol, SAMPLE_COLUMN: max(int(f.t_mkt) - int(t0), 0)})
    return pd.DataFrame(rows, columns=["cloid", "symbol", SAMPLE_COLUMN])


def _stats(x: pd.Series) -> dict[str, float]:
    x = pd.to_numeric(x, errors="coerce").dropna()
    if not len(x):
        return {"n": 0}
    q = np.quantile(x.to_numpy(dtype=float), [0.5, 0.99])
    return {"n": int(len(x)), "mean": float(x.mean()), "p50": float(q[0]), "p99": float(q[1]),
            "max_abs": float(x.abs().max())}


def parity_report(run_dir: str | Path, out_dir: str | Path | None = None, write: bool = True) -> ParityReport:
    """Compare a recorded session with its backtest (module doc); writes the files when ``write``."""
    run = Path(run_dir)
    info = _session_info(run)
    mode = info["mode"]
    cfg = info["config"]
    rec: Recording = load_recording(run)
    assets = {s: AssetSpec(**a) for s, a in (info.get("assets") or {}).items()} or dict(DEFAULT_ASSETS)
    audit = read_audit(run / "audit")
    if not len(audit):
        raise ConfigError(f"{run / 'audit'}: the session's audit log is empty")
    s = run_record("session", audit, rec.arrivals, exchange_times=mode == "live")
    status_path = run / "status.json"
    if status_path.exists():
        st = json.loads(status_path.read_text())
        if st.get("equity") is not None:
            s.equity_net = float(st["equity"]) - float((cfg.get("venue") or {}).get("initial_cash", 100_000.0))
    out = Path(out_dir) if out_dir is not None else run / "parity"
    out.mkdir(parents=True, exist_ok=True)

    bt_obj, bt_res = _backtest(cfg, rec.market, assets)
    marks = dict(bt_obj.kernel.portfolio.marks)
    b = run_record("backtest", bt_res.audit.frame())
    lat = latency_samples(s, mode)
    lat_path = out / "latency_samples.csv"
    lat.to_csv(lat_path, index=False)
    if len(lat):
        venue = dataclasses.replace(bt_obj.spec.venue, latency="empirical", latency_file=str(lat_path),
                                    latency_seed=0)
        _, bl_res = _backtest(cfg, rec.market, assets, venue=venue)
        bl = run_record("backtest_latency", bl_res.audit.frame())
    else:
        bl = dataclasses.replace(b, name="backtest_latency")
    cmp_b = compare(s, b)
    cmp_bl = compare(s, bl)
    attribution = attribute(s, b, bl, cmp_bl.fills, marks)
    pnl = {"session": s.pnl(marks), "backtest": b.pnl(marks), "backtest_latency": bl.pnl(marks),
           "session_equity": s.equity_net}
    gap = pnl["session"] + attribution["marks"] - pnl["backtest"]
    ack = pd.read_csv(run / "latency.csv") if (run / "latency.csv").exists() else pd.DataFrame()
    fm = cmp_b.fills[cmp_b.fills["status"] == "matched"] if len(cmp_b.fills) else cmp_b.fills
    agree = (cmp_b.counts["decisions_differs"] == cmp_b.counts["decisions_missed"] ==
             cmp_b.counts["decisions_extra"] == cmp_b.counts["fills_missed"] == cmp_b.counts["fills_extra"] == 0
             and (not len(fm) or bool((fm["dpx"].abs() <= PX_TOL * fm["px_backtest"].abs()).all()
                                      and (fm["dsz"].abs() <= 1e-12).all())))
    summary_ = {
        "session": info.get("session"), "mode": mode, "strategy": (cfg.get("strategy") or {}).get("name"),
        "run_dir": str(run), "events": len(rec.market), "agree": bool(agree),
        "counts": cmp_b.counts, "counts_vs_latency_backtest": cmp_bl.counts,
        "pnl": pnl, "gap": gap, "attribution": attribution,
        "dominant": max(attribution, key=lambda k: abs(attribution[k])) if any(attribution.values()) else "none",
        "fills": {"time_diff_ms": _stats(fm["dt_ms"]) if len(fm) else {"n": 0},
                  "price_diff": _stats(fm["dpx"]) if len(fm) else {"n": 0},
                  "slippage_bps": _stats(fm["slippage_bps"]) if len(fm) else {"n": 0},
                  "size_diff": _stats(fm["dsz"]) if len(fm) else {"n": 0}},
        "latency": {"event_to_exchange_ms": summary(lat[SAMPLE_COLUMN]) if len(lat) else {"n": 0},
                    "decision_to_ack_ms": summary(ack["decision_to_ack_ms"]) if len(ack) else {"n": 0},
                    "samples_file": str(lat_path)},
        "fees": {"session": s.fees, "backtest": b.fees}, "funding": {"session": s.funding, "backtest": b.funding},
    }
    rep = ParityReport(summary_, cmp_b.decisions, cmp_b.fills, cmp_bl.fills, lat)
    if write:
        rep.files = _write(rep, out, s, b, bl, rec, marks, ack)
        rep.files["latency_samples"] = lat_path
        summary_["files"] = {k: str(v) for k, v in rep.files.items()}
        (out / "parity.json").write_text(json.dumps(summary_, indent=2, default=_json_default))
        rep.files["json"] = out / "parity.json"
    return rep


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    return str(o)


# ---------------------------------------------------------------------------- html
def _pnl_curves(runs: list[RunRecord], rec: Recording) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """PnL of each run through time, every fill valued at the last price seen at that time."""
    md = rec.market
    px_rows = []
    for kind, col in (("trades", "px"), ("candles", "close"), ("mark", "mark_px")):
        a = getattr(md, kind)
        if len(a):
            px_rows.append(pd.DataFrame({"t": a["ts_exch"], "sym": a["sym"], "px": a[col]}))
    if len(md.l2):
        mid = (md.l2["bid_px"][:, 0] + md.l2["ask_px"][:, 0]) / 2
        px_rows.append(pd.DataFrame({"t": md.l2["ts_exch"], "sym": md.l2["sym"], "px": mid}))
    prices = pd.concat(px_rows).sort_values("t", kind="stable") if px_rows else pd.DataFrame(columns=["t", "sym", "px"])
    t_all = prices["t"].to_numpy()
    grid = np.unique(np.linspace(t_all.min(), t_all.max(), 400).astype(np.int64)) if len(t_all) else np.zeros(0, np.int64)
    series = {}
    for s_id, sym in enumerate(md.symbols):
        p = prices[prices["sym"] == s_id]
        if len(p):
            idx = np.searchsorted(p["t"].to_numpy(), grid, side="right") - 1
            series[sym] = np.where(idx >= 0, p["px"].to_numpy()[np.clip(idx, 0, None)], np.nan)
    out = {}
    for r in runs:
        pnl = np.zeros(len(grid))
        for f in r.fills.itertuples(index=False):
            mk = series.get(f.symbol)
            if mk is None:
                continue
            live = grid >= f.t_mkt
            pnl += np.where(live, f.side * f.sz * (np.nan_to_num(mk, nan=f.px) - f.px) - f.fee, 0.0)
        out[r.name] = pnl
    return grid, out


def _html_table(df: pd.DataFrame, limit: int = 300) -> str:
    if not len(df):
        return '<p class="sub">none</p>'
    d = df.head(limit)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in d.columns)
    body = []
    for row in d.itertuples(index=False):
        cells = []
        for v in row:
            if isinstance(v, float):
                txt = "" if math.isnan(v) else f"{v:,.6g}"
            else:
                txt = "" if v is None else str(v)
            cls = ' class="bad"' if txt in ("missed", "extra", "differs") else ""
            cells.append(f"<td{cls}>{html.escape(txt)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = f'<p class="sub">first {limit} of {len(df):,} rows (all in the CSV)</p>' if len(df) > limit else ""
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def _write(rep: ParityReport, out: Path, s: RunRecord, b: RunRecord, bl: RunRecord, rec: Recording,
           marks: dict[str, float], ack: pd.DataFrame) -> dict[str, Path]:
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs

    files = {"decisions": out / "decisions.csv", "fills": out / "fills.csv"}
    rep.decisions.to_csv(files["decisions"], index=False)
    rep.fills.to_csv(files["fills"], index=False)
    js = out / "plotly.min.js"
    if not js.exists():
        js.write_text(get_plotlyjs(), encoding="utf-8")
    figs = []
    grid, curves = _pnl_curves([s, b, bl], rec)
    f1 = go.Figure()
    for name, y in curves.items():
        f1.add_trace(go.Scatter(x=pd.to_datetime(grid, unit="ms", utc=True), y=y, name=name, mode="lines"))
    f1.update_layout(title="PnL through time (fills valued at the last price)", height=360,
                     yaxis_title="USDC", margin={"l": 60, "r": 20, "t": 50, "b": 40})
    figs.append(f1)
    a = rep.summary["attribution"]
    f2 = go.Figure(go.Waterfall(x=["backtest", *a.keys(), "session"],
                                measure=["absolute", *["relative"] * len(a), "total"],
                                y=[rep.summary["pnl"]["backtest"], *a.values(), 0.0]))
    f2.update_layout(title="PnL gap, backtest to session, by cause", height=360,
                     margin={"l": 60, "r": 20, "t": 50, "b": 40})
    figs.append(f2)
    f3 = go.Figure()
    if len(rep.latency_samples):
        f3.add_trace(go.Histogram(x=rep.latency_samples[SAMPLE_COLUMN], name="event → exchange (ms)", opacity=0.7))
    if len(ack):
        f3.add_trace(go.Histogram(x=ack["decision_to_ack_ms"], name="decision → ack (ms)", opacity=0.7))
    f3.update_layout(title="Latency distribution", barmode="overlay", height=320, xaxis_title="ms",
                     margin={"l": 60, "r": 20, "t": 50, "b": 40})
    figs.append(f3)
    fm = rep.fills[rep.fills["status"] == "matched"] if len(rep.fills) else rep.fills
    if len(fm):
        f4 = go.Figure(go.Scatter(x=pd.to_datetime(fm["t_mkt_backtest"], unit="ms", utc=True), y=fm["slippage_bps"],
                                  mode="markers", text=fm["symbol"], name="slippage"))
        f4.update_layout(title="Session fill price vs the backtest's (bps, + = session paid more)", height=320,
                         margin={"l": 60, "r": 20, "t": 50, "b": 40})
        figs.append(f4)
    plots = "".join(f.to_html(full_html=False, include_plotlyjs="directory" if i == 0 else False)
                    for i, f in enumerate(figs))
    sm = rep.summary
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:+,.2f}</td></tr>" for k, v in a.items())
    lat = sm["latency"]
    lat_rows = "".join(
        f"<tr><td>{k}</td>" + "".join(f"<td>{v.get(q, '') if isinstance(v.get(q), int) else format(v.get(q, float('nan')), ',.2f')}</td>"
                                      for q in ("n", "p50", "p90", "p99", "max")) + "</tr>"
        for k, v in lat.items() if isinstance(v, dict))
    counts = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in sm["counts"].items())
    verdict = "AGREE" if sm["agree"] else "DIFFER"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>parity {html.escape(str(sm['session']))}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;max-width:1300px;color:#222}}
h1{{font-size:21px}} h2{{font-size:16px;margin-top:26px;border-bottom:1px solid #ddd}} .sub{{color:#666;font-size:13px}}
table{{border-collapse:collapse;font-size:12px}} td,th{{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}}
th{{background:#f5f5f5}} td:first-child,th:first-child{{text-align:left}} .bad{{color:#b3261e;font-weight:600}}
.grid{{display:flex;gap:40px;flex-wrap:wrap}}</style></head><body>
<h1>Parity: {html.escape(str(sm['strategy']))} {html.escape(sm['mode'])} session {html.escape(str(sm['session']))} vs backtest — {verdict}</h1>
<div class="sub">{sm['events']:,} recorded market events · PnL at common final marks: session {sm['pnl']['session']:+,.2f},
backtest {sm['pnl']['backtest']:+,.2f}, backtest with measured latency {sm['pnl']['backtest_latency']:+,.2f} · gap {sm['gap']:+,.2f}
(largest cause: {html.escape(sm['dominant'])})</div>
<div class="grid"><div><h2>Gap by cause (USDC)</h2><table><tr><th>cause</th><th>USDC</th></tr>{rows}
<tr><th>gap</th><th>{sm['gap']:+,.2f}</th></tr></table></div>
<div><h2>Latency (ms)</h2><table><tr><th></th><th>n</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>{lat_rows}</table>
<p class="sub">samples for a backtest: <code>venue.latency=empirical venue.latency_file={html.escape(lat['samples_file'])}</code></p></div>
<div><h2>Counts</h2><table>{counts}</table></div></div>
{plots}
<h2>Decisions, side by side</h2>{_html_table(rep.decisions)}
<h2>Fills (per order), side by side</h2>{_html_table(rep.fills)}
<h2>Fills against the backtest with measured latency</h2>{_html_table(rep.fills_latency)}
</body></html>"""
    files["html"] = out / "parity.html"
    files["html"].write_text(page, encoding="utf-8")
    return files


# ---------------------------------------------------------------------------- cli
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hlquant parity", description="Compare a recorded paper or live session "
                                 "with its backtest on the same market events (docs/live.md).")
    ap.add_argument("run_dir", help="the session folder (session.json, audit/, market/)")
    ap.add_argument("--out", default=None, help="where to write the report (default RUN_DIR/parity)")
    args = ap.parse_args(argv)
    rep = parity_report(args.run_dir, args.out)
    print(rep)
    print(f"report: {rep.files.get('html')}\nsummary: {rep.files.get('json')}")
    return 0
