"""Write the small archive fixtures in this folder (``python tests/data/archive/make_fixtures.py``).

The files follow the shapes documented for Hyperliquid's public archives
(docs/data.md), laid out as ``{bucket}/{key}`` exactly like the buckets, so the
same tree serves the importer tests and, uploaded to a local S3 server, the
fetch tests. Deterministic (seeded); the edge cases are written out below:

- asset_ctxs/20250322.csv.lz4: ``time`` as ISO 8601 with ``Z``; BTC, ETH and an
  illiquid coin (HPOS: 0.0 prices, ``null`` mid and impact prices, empty
  premium); an off-grid BTC row colliding with the next minute's row, an
  off-grid ETH row whose next minute has no row, one repeated ETH row, one
  BTC minute with a ``null`` mid.
- asset_ctxs/20251024.csv.lz4: ``time`` as ``2025-10-24 20:00:00.000``.
- market_data/20250322/10/l2Book/BTC.lz4: L2 snapshots.
- node_trades/hourly/20250322/{10,11}.lz4: every trade twice (``"B"`` and ``"A"``
  line), ``side_info`` = [buyer, seller], nanosecond and millisecond times, a
  taker sweeping four makers under one hash (two at the same price and size),
  a liquidation, a vault netting override, a trade of 10:59:59.999999999
  written in the 11:00 file, a broken line.
- node_fills/hourly/20250525/14.lz4: ``[user, fill]`` per counterparty, fills
  without ``tid``, a sweep with and without tid, a liquidation fill.
- node_fills_by_block/hourly/20250727/{9,10,11}.lz4: blocks keyed by
  processing time; the first blocks of the 10 and 11 files hold fills of the
  previous hour.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import lz4.frame

HERE = Path(__file__).resolve().parent
ARCHIVE = HERE / "hyperliquid-archive"
NODE = HERE / "hl-mainnet-node-data"
USERS = [f"0x{i:040x}" for i in (0xA11CE, 0xB0B, 0xCAFE, 0xD00D, 0xBEEF, 0xF00D)]
CTX_HEADER = ("time,coin,funding,open_interest,prev_day_px,day_ntl_vlm,premium,oracle_px,mark_px,mid_px,"
              "impact_bid_px,impact_ask_px")


def write_lz4(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with lz4.frame.open(path, "wb") as f:
        f.write(("\n".join(lines) + "\n").encode())


def iso(date: str, sec: float, digits: int = 9, sep: str = "T", z: str = "") -> str:
    h, rem = divmod(sec, 3600)
    m, s = divmod(rem, 60)
    whole = int(s)
    frac = round((s - whole) * 10**digits)
    base = f"{date[:4]}-{date[4:6]}-{date[6:]}{sep}{int(h):02d}:{int(m):02d}:{whole:02d}"
    return (base + (f".{frac:0{digits}d}" if digits else "")) + z


def price_path(rng: random.Random, start: float, n: int, vol: float, regime: int = 40) -> list[float]:
    """A random walk whose drift flips every ``regime`` steps (so moving averages cross)."""
    out, px, drift = [], start, vol
    for i in range(n):
        if i % regime == 0:
            drift = -drift
        px *= 1 + drift * 0.3 + rng.gauss(0, vol)
        out.append(px)
    return out


def ctx_row(t: str, coin: str, mid: float, rng: random.Random, illiquid: bool = False,
            premium: str | None = None, mid_null: bool = False) -> str:
    if illiquid:
        return f"{t},{coin},0.0000125,0.0,0.0,0.0,,0.0,0.0,null,null,null"
    mark = mid * (1 + rng.uniform(-2e-4, 2e-4))
    oracle = mid * (1 + rng.uniform(-5e-4, 5e-4))
    funding = f"{rng.uniform(-2e-5, 4e-5):.10f}"
    prem = premium if premium is not None else f"{(mark - oracle) / oracle:.8f}"
    mid_s = "null" if mid_null else f"{mid:.6g}"
    return (f"{t},{coin},{funding},{rng.uniform(1e3, 2e3):.3f},{mid * 0.99:.6g},{rng.uniform(1e8, 2e8):.2f},"
            f"{prem},{oracle:.6g},{mark:.6g},{mid_s},{mid * 0.9999:.6g},{mid * 1.0001:.6g}")


def asset_ctxs(rng: random.Random) -> dict[str, list[float]]:
    mids = {"BTC": price_path(rng, 84_000.0, 240, 6e-4), "ETH": price_path(rng, 1_980.0, 240, 8e-4, 55)}
    rows = [CTX_HEADER]
    for i in range(240):  # 10:00 .. 13:59
        t = iso("20250322", 36_000 + 60 * i, digits=0, z="Z")
        for coin in ("BTC", "ETH"):
            if coin == "ETH" and i == 136:  # 12:16 missing: the off-grid 12:15:00.250 row takes it
                rows.append(ctx_row(iso("20250322", 36_000 + 60 * 135 + 0.25, 3, z="Z"), coin,
                                    mids[coin][i], rng))
                continue
            rows.append(ctx_row(t, coin, mids[coin][i], rng, mid_null=coin == "BTC" and i == 200))
            if coin == "BTC" and i == 89:  # an off-grid row 0.3 s before 11:30, which has its own row
                rows.append(ctx_row(iso("20250322", 36_000 + 60 * 89 + 59.7, 3, z="Z"), coin, mids[coin][i], rng))
            if coin == "ETH" and i == 5:  # the same row twice (files overlapping)
                rows.append(rows[-1])
        rows.append(ctx_row(t, "HPOS", 0.0, rng, illiquid=True))
    write_lz4(ARCHIVE / "asset_ctxs" / "20250322.csv.lz4", rows)
    return mids


def asset_ctxs_space_format(rng: random.Random) -> None:
    rows = [CTX_HEADER]
    mids = {"BTC": price_path(rng, 110_500.0, 30, 5e-4), "ETH": price_path(rng, 3_900.0, 30, 7e-4)}
    for i in range(30):  # 20:00 .. 20:29, time as "2025-10-24 20:00:00.000"
        t = iso("20251024", 72_000 + 60 * i, digits=3, sep=" ")
        for coin in ("BTC", "ETH"):
            rows.append(ctx_row(t, coin, mids[coin][i], rng, premium="null" if i == 3 else None))
    rows.append(ctx_row(iso("20251024", 72_000 + 600.512, 3, sep=" "), "BTC", mids["BTC"][10], rng))
    write_lz4(ARCHIVE / "asset_ctxs" / "20251024.csv.lz4", rows)


def l2_books(rng: random.Random, mid: float) -> None:
    lines = []
    for i in range(10):
        t_ms = 1742637600000 + i * 500  # 2025-03-22T10:00:00Z + i/2 s
        bids = [{"px": f"{mid - 1 - j:.0f}", "sz": f"{rng.uniform(0.01, 2):.5f}", "n": rng.randint(1, 9)}
                for j in range(20)]
        asks = [{"px": f"{mid + 1 + j:.0f}", "sz": f"{rng.uniform(0.01, 2):.5f}", "n": rng.randint(1, 9)}
                for j in range(20)]
        lines.append(json.dumps({"time": iso("20250322", 36_000 + i * 0.5 + 0.000123456), "ver_num": 1,
                                 "raw": {"channel": "l2Book",
                                         "data": {"coin": "BTC", "time": t_ms, "levels": [bids, asks]}}}))
    write_lz4(ARCHIVE / "market_data" / "20250322" / "10" / "l2Book" / "BTC.lz4", lines)


class Oids:
    def __init__(self, start: int) -> None:
        self.n = start

    def take(self) -> int:
        self.n += random.randint(50, 500)
        return self.n


def trade_line(coin, t, px, sz, h, buyer, seller, override="Na", side="B"):
    return json.dumps({"coin": coin, "side": side, "time": t, "px": px, "sz": sz, "hash": h,
                       "trade_dir_override": override,
                       "side_info": [dict(buyer, twap_id=None, cloid=None), dict(seller, twap_id=None, cloid=None)]},
                      separators=(",", ":"))


def both_sides(*args, **kw) -> list[str]:
    """A node trade as the node writes it: a "B" line and an "A" line, same content."""
    return [trade_line(*args, **kw, side="B"), trade_line(*args, **kw, side="A")]


def node_trades(rng: random.Random, mids: dict[str, list[float]]) -> None:
    oids = Oids(80_000_000_000)
    files: dict[int, list[str]] = {10: [], 11: []}
    for i in range(120):  # minutes 10:00 .. 11:59
        for coin in ("BTC", "ETH"):
            for _ in range(rng.choice((0, 1, 1, 2))):
                sec = 36_000 + 60 * i + rng.uniform(0, 59.9)
                mid = mids[coin][i]
                taker_buys = rng.random() < 0.5
                px = round(mid * (1 + (2e-4 if taker_buys else -2e-4)), 0 if coin == "BTC" else 1)
                sz = f"{rng.uniform(0.001, 0.3):.5f}" if coin == "BTC" else f"{rng.uniform(0.01, 4):.4f}"
                maker_oid, taker_oid = oids.take(), oids.take()  # the maker rested first
                b, s = (taker_oid, maker_oid) if taker_buys else (maker_oid, taker_oid)
                ub, us = rng.sample(USERS, 2)
                t = iso("20250322", sec, digits=3 if i < 3 else 9)  # the oldest lines carry ms only
                files[10 + i // 60] += both_sides(
                    coin, t, f"{px:.0f}" if coin == "BTC" else f"{px:.1f}", sz, f"0x{rng.getrandbits(256):064x}",
                    {"user": ub, "start_pos": f"{rng.uniform(-5, 5):.5f}", "oid": b},
                    {"user": us, "start_pos": f"{rng.uniform(-5, 5):.5f}", "oid": s})
    # one taker buy sweeping four resting asks under one hash; two makers sit at the same
    # price with the same size, so only their oids tell those two trades apart
    makers = [oids.take() for _ in range(4)]
    taker = oids.take()
    sweep_hash = "0x" + "5e" * 32
    t = iso("20250322", 36_000 + 30 * 60 + 12.345678901)
    for (px, sz), m in zip((("84110", "0.01000"), ("84111", "0.02500"), ("84111", "0.02500"),
                            ("84113", "0.10000")), makers, strict=True):
        files[10] += both_sides("BTC", t, px, sz, sweep_hash, {"user": USERS[0], "start_pos": "0.0", "oid": taker},
                                {"user": USERS[1], "start_pos": "1.0", "oid": m})
    # a liquidation (the liquidated long sells into the book) and a vault netting override
    t = iso("20250322", 36_000 + 45 * 60 + 1.000000001)
    mm = oids.take()
    files[10] += both_sides("ETH", t, "1975.0", "2.5000", "0x" + "11" * 32,
                            {"user": USERS[2], "start_pos": "3.0", "oid": mm},
                            {"user": USERS[3], "start_pos": "2.5", "oid": oids.take()}, override="LiquidatedMarket")
    t = iso("20250322", 36_000 + 50 * 60 + 7.5)
    mm = oids.take()
    files[10] += both_sides("ETH", t, "1976.0", "0.5000", "0x" + "22" * 32,
                            {"user": USERS[4], "start_pos": "0.0", "oid": oids.take()},
                            {"user": USERS[5], "start_pos": "0.0", "oid": mm}, override="NetChildVaultPositions")
    # the last trade of hour 10, written after 11:00 into the 11 file
    mm = oids.take()
    spill = both_sides("BTC", iso("20250322", 39_599.999999999), "84050", "0.04200", "0x" + "33" * 32,
                       {"user": USERS[1], "start_pos": "0.0", "oid": oids.take()},
                       {"user": USERS[2], "start_pos": "0.0", "oid": mm})
    files[11] = spill + files[11] + ["{broken json"]
    for h, lines in files.items():
        write_lz4(NODE / "node_trades" / "hourly" / "20250322" / f"{h}.lz4", lines)


def fill(coin, px, sz, side, t_ms, h, oid, crossed, tid, start, **extra):
    f = {"coin": coin, "px": px, "sz": sz, "side": side, "time": t_ms, "startPosition": start,
         "dir": "Open Long" if side == "B" else "Open Short", "closedPnl": "0.0", "hash": h, "oid": oid,
         "crossed": crossed, "fee": "0.01" if crossed else "-0.001", "feeToken": "USDC"}
    if tid is not None:
        f["tid"] = tid
    f.update(extra)
    return f


def trade_fills(coin, px, sz, taker_side, t_ms, h, taker_oid, maker_oid, tid, taker_start="0.0",
                maker_start="0.0", users=(USERS[0], USERS[1]), **extra):
    """Both counterparties' fills of one trade: the taker's (crossed) and the maker's."""
    maker_side = "A" if taker_side == "B" else "B"
    return [[users[0], fill(coin, px, sz, taker_side, t_ms, h, taker_oid, True, tid, taker_start, **extra)],
            [users[1], fill(coin, px, sz, maker_side, t_ms, h, maker_oid, False, tid, maker_start, **extra)]]


def node_fills(rng: random.Random) -> None:
    t0 = 1748181600000  # 2025-05-25T14:00:00Z
    lines = []
    tid = 700_000_000_000
    for k in range(40):
        coin = ("BTC", "ETH")[k % 2]
        px = f"{108_000 + rng.randint(-50, 50)}" if coin == "BTC" else f"{2_550 + rng.randint(-20, 20) / 10:.1f}"
        has_tid = k >= 10  # the oldest fills carry no tid
        tid += rng.randint(1, 9)
        pair = trade_fills(coin, px, f"{rng.uniform(0.01, 1):.4f}", rng.choice("BA"), t0 + k * 60_000 + rng.randint(0, 59_999),
                           f"0x{rng.getrandbits(256):064x}", 90_000_000_000 + 2 * k + 1, 90_000_000_000 + 2 * k,
                           tid if has_tid else None)
        lines += [json.dumps(p, separators=(",", ":")) for p in pair]
    # a sweep with tids: one taker order, three makers, one hash
    h = "0x" + "aa" * 32
    for j, (px, sz) in enumerate((("108010", "0.0100"), ("108011", "0.0200"), ("108012", "0.0300"))):
        pair = trade_fills("BTC", px, sz, "B", t0 + 41 * 60_000, h, 91_000_000_000, 90_900_000_000 + j,
                           tid + 100 + j, taker_start=f"{0.01 * j:.2f}")
        lines += [json.dumps(p, separators=(",", ":")) for p in pair]
    # a sweep without tids: two makers at the same price and size; the taker's two fills
    # differ only by startPosition
    h = "0x" + "bb" * 32
    for j in range(2):
        pair = trade_fills("ETH", "2551.0", "0.5000", "A", t0 + 42 * 60_000, h, 92_000_000_000, 91_900_000_000 + j,
                           None, taker_start=f"{-0.5 * j:.1f}")
        lines += [json.dumps(p, separators=(",", ":")) for p in pair]
    # a liquidation fill (API shape: a liquidation object on the liquidated user's fill)
    liq = {"liquidatedUser": USERS[3], "markPx": "2540.0", "method": "market"}
    pair = trade_fills("ETH", "2540.5", "1.2000", "A", t0 + 43 * 60_000, "0x" + "cc" * 32, 93_000_000_000,
                       92_900_000_000, tid + 200, users=(USERS[3], USERS[4]), liquidation=liq)
    lines += [json.dumps(p, separators=(",", ":")) for p in pair]
    write_lz4(NODE / "node_fills" / "hourly" / "20250525" / "14.lz4", lines)


def node_fills_by_block(rng: random.Random) -> None:
    base = 1753574400000  # 2025-07-27T00:00:00Z
    tid = [800_000_000_000]
    block = [700_000_000]

    def blk(t_ms: int, n: int) -> str:
        block[0] += 1
        events = []
        for _ in range(n):
            tid[0] += rng.randint(1, 5)
            coin = rng.choice(("BTC", "ETH"))
            px = f"{118_000 + rng.randint(-30, 30)}" if coin == "BTC" else f"{3_790 + rng.randint(-30, 30) / 10:.1f}"
            events += trade_fills(coin, px, f"{rng.uniform(0.001, 0.5):.4f}", rng.choice("BA"), t_ms,
                                  f"0x{rng.getrandbits(256):064x}", 95_000_000_000 + 2 * tid[0] + 1,
                                  95_000_000_000 + 2 * tid[0], tid[0])
        sec = t_ms / 1000 - base / 1000
        return json.dumps({"local_time": iso("20250727", sec + 0.15), "block_time": iso("20250727", sec + 0.000123),
                           "block_number": block[0], "events": events}, separators=(",", ":"))

    h = 3_600_000
    files = {
        9: [blk(base + 9 * h + 30 * 60_000, 2), blk(base + 9 * h + 59 * 60_000 + 59_500, 1)],
        # processed after 10:00, but the first block's fills are of 09:59:59.9
        10: [blk(base + 10 * h - 100, 2), blk(base + 10 * h + 20 * 60_000, 3), blk(base + 10 * h + 40 * 60_000, 2)],
        11: [blk(base + 11 * h - 40, 2), blk(base + 11 * h + 5 * 60_000, 1)],
    }
    for hour, lines in files.items():
        write_lz4(NODE / "node_fills_by_block" / "hourly" / "20250727" / f"{hour}.lz4", lines)


def main() -> None:
    random.seed(17)
    rng = random.Random(17)
    mids = asset_ctxs(rng)
    asset_ctxs_space_format(rng)
    l2_books(rng, mids["BTC"][0])
    node_trades(rng, mids)
    node_fills(rng)
    node_fills_by_block(rng)


if __name__ == "__main__":
    main()
