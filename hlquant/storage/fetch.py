"""``hlquant record fetch``: download Hyperliquid's archive files into a local cache.

    hlquant record fetch --from 2025-03-22 --to 2025-04-01 --coins BTC,ETH \\
        --datasets asset_ctxs,l2book,trades,fills [--cache DIR] [--workers 8] [--yes]

Both buckets are *requester pays*: every request carries ``RequestPayer=
requester`` and AWS bills the caller's account for requests and transfer, so
credentials are required (boto3's standard chain: ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` or ``AWS_PROFILE`` from the
environment; never a command-line flag). Before anything is downloaded the
objects are listed (their real sizes) and a cost estimate is printed; the
download starts only after ``--yes`` or a "y" at the prompt.

The cache mirrors the buckets (``{cache}/{bucket}/{key}``), which is the layout
``hlquant record import`` reads. Downloads are resumable: an object is written
to ``{name}.{etag}.part`` and renamed when complete; a rerun skips complete
files (same size as listed) and continues a ``.part`` file with a ranged GET
(``If-Match`` the listed ETag, so a changed object restarts from zero). Hourly
node datasets also fetch the hour before ``--from`` and the hour at ``--to``:
fills of a requested hour can sit in the neighbouring hour's file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hlquant.core.errors import ConfigError, HlquantError

log = logging.getLogger(__name__)

ARCHIVE_BUCKET = "hyperliquid-archive"
NODE_BUCKET = "hl-mainnet-node-data"
DEFAULT_CACHE = Path(os.environ.get("HLQUANT_ARCHIVE_CACHE", "~/.cache/hlquant/archive"))
DEFAULT_REGION = "ap-northeast-1"
"""Where third parties report both buckets; S3's redirect is followed if that is wrong."""
USD_PER_GB = 0.09
"""Transfer out to the internet, first 10 TB/month, as published for US East (docs/data.md);
region-dependent, so ``--usd-per-gb`` overrides it. In-region EC2 transfer is free."""
USD_PER_1K_GET = 0.0004
USD_PER_1K_LIST = 0.005
GB = 1 << 30  # AWS bills data transfer per GB of 2^30 bytes

# dataset -> (bucket, listing prefix per day, keep(key) filter kind, hourly)
DATASETS: dict[str, list[tuple[str, str, bool]]] = {
    "asset_ctxs": [(ARCHIVE_BUCKET, "asset_ctxs/{d}", False)],
    "l2book": [(ARCHIVE_BUCKET, "market_data/{d}/", False)],
    "trades": [(NODE_BUCKET, "node_trades/hourly/{d}/", True)],
    "fills": [(NODE_BUCKET, "node_fills/hourly/{d}/", True), (NODE_BUCKET, "node_fills_by_block/hourly/{d}/", True)],
}


class FetchError(HlquantError):
    """A download could not be completed (the message names the object)."""


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    size: int
    etag: str


@dataclass
class Estimate:
    objects: int
    bytes: int
    gets: int
    lists: int
    usd_per_gb: float
    usd_transfer: float
    usd_requests: float

    @property
    def usd_total(self) -> float:
        return self.usd_transfer + self.usd_requests


@dataclass
class FetchPlan:
    objects: list[ObjectRef] = field(default_factory=list)
    lists: int = 0  # LIST requests made to build the plan
    empty_days: dict[str, list[str]] = field(default_factory=dict)  # dataset -> days without objects
    regions: dict[str, str] = field(default_factory=dict)
    cached: int = 0  # objects already complete in the cache
    partial_bytes: int = 0  # bytes already on disk in .part files
    todo: list[ObjectRef] = field(default_factory=list)


@dataclass
class FetchReport:
    planned: int = 0
    cached: int = 0
    downloaded: int = 0
    resumed: int = 0
    bytes: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    estimate: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- client
def _add_payer_header(request: Any, **_: Any) -> None:
    request.headers["x-amz-request-payer"] = "requester"


def make_client(endpoint_url: str | None = None, region: str | None = None, workers: int = 8) -> Any:
    """An S3 client with credentials from the environment (boto3's chain), refusing to
    start without any: the buckets are requester pays, anonymous requests are refused."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ConfigError("record fetch needs boto3: pip install 'hlquant[archive]'") from None
    session = boto3.session.Session()
    if session.get_credentials() is None:
        raise ConfigError("record fetch: no AWS credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                          "(or AWS_PROFILE) in the environment. The buckets are requester pays: "
                          "downloads are billed to that account")
    cfg = Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=max(10, workers),
                 s3={"addressing_style": "path"} if endpoint_url else {})
    client = session.client("s3", endpoint_url=endpoint_url, config=cfg,
                            region_name=region or session.region_name or DEFAULT_REGION)
    client.meta.events.register("before-sign.s3.HeadBucket", _add_payer_header)
    return client


def bucket_region(client: Any, bucket: str) -> str:
    try:
        r = client.head_bucket(Bucket=bucket)
        return r["ResponseMetadata"]["HTTPHeaders"].get("x-amz-bucket-region", "?")
    except Exception as e:  # noqa: BLE001 - the region is informative only
        hdrs = getattr(e, "response", {}).get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return hdrs.get("x-amz-bucket-region", "?")


# ----------------------------------------------------------------------------- plan
def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days)]


def _hour_of_key(key: str) -> int | None:
    stem = key.rsplit("/", 1)[-1].split(".")[0]
    return int(stem) if stem.isdigit() else None


def plan_fetch(client: Any, start: dt.date, end: dt.date, datasets: Sequence[str],
               coins: Sequence[str] | None, cache: Path) -> FetchPlan:
    """List what exists for ``[start, end)`` (days, UTC) and compare with the cache."""
    plan = FetchPlan()
    paginator = client.get_paginator("list_objects_v2")
    seen: set[tuple[str, str]] = set()

    def listing(bucket: str, prefix: str) -> Iterable[dict]:
        from botocore.exceptions import ClientError

        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix, RequestPayer="requester"):
                plan.lists += 1
                yield from page.get("Contents", []) or []
        except ClientError as e:
            err = e.response.get("Error", {})
            raise FetchError(f"LIST s3://{bucket}/{prefix}: {err.get('Code')}: {err.get('Message')}") from None

    def add(bucket: str, obj: dict) -> None:
        if (bucket, obj["Key"]) not in seen:
            seen.add((bucket, obj["Key"]))
            plan.objects.append(ObjectRef(bucket, obj["Key"], int(obj["Size"]), str(obj.get("ETag", ""))))

    for name in datasets:
        if name not in DATASETS:
            raise ConfigError(f"--datasets: unknown {name!r}; have {', '.join(DATASETS)}")
        for bucket, template, hourly in DATASETS[name]:
            plan.regions.setdefault(bucket, "")
            found: set[str] = set()
            for day in _days(start, end):
                d = f"{day:%Y%m%d}"
                for obj in listing(bucket, template.format(d=d)):
                    key = obj["Key"]
                    if name == "asset_ctxs" and key != f"asset_ctxs/{d}.csv.lz4":
                        continue
                    if name == "l2book" and coins and not any(key.endswith(f"/l2Book/{c}.lz4") for c in coins):
                        continue
                    found.add(d)
                    add(bucket, obj)
            if hourly:  # the neighbouring hours outside the range (spill-over)
                for day, hour in ((start - dt.timedelta(days=1), 23), (end, 0)):
                    for obj in listing(bucket, template.format(d=f"{day:%Y%m%d}")):
                        if _hour_of_key(obj["Key"]) == hour:
                            add(bucket, obj)
            missing = [f"{d:%Y%m%d}" for d in _days(start, end) if f"{d:%Y%m%d}" not in found]
            if missing:
                plan.empty_days[template.split("/")[0]] = missing
    for bucket in plan.regions:
        plan.regions[bucket] = bucket_region(client, bucket)
    for ref in plan.objects:
        dest = cache / ref.bucket / ref.key
        if dest.is_file() and dest.stat().st_size == ref.size:
            plan.cached += 1
            continue
        part = _part_path(dest, ref)
        if part.is_file() and part.stat().st_size <= ref.size:
            plan.partial_bytes += part.stat().st_size
        plan.todo.append(ref)
    return plan


def estimate(plan: FetchPlan, usd_per_gb: float = USD_PER_GB) -> Estimate:
    nbytes = sum(r.size for r in plan.todo) - plan.partial_bytes
    gets = len(plan.todo)
    return Estimate(len(plan.todo), nbytes, gets, plan.lists, usd_per_gb, nbytes / GB * usd_per_gb,
                    gets / 1000 * USD_PER_1K_GET + plan.lists / 1000 * USD_PER_1K_LIST)


def describe(plan: FetchPlan, est: Estimate, start: dt.date, end: dt.date) -> str:
    lines = [f"archive {start} .. {end} (end excluded): {len(plan.objects)} objects, "
             f"{sum(r.size for r in plan.objects) / GB:.3f} GB listed"]
    for b, region in plan.regions.items():
        lines.append(f"  bucket {b}: region {region or '?'}, requester pays")
    for prefix, days in plan.empty_days.items():
        lines.append(f"  {prefix}: no files for {len(days)} day(s) ({days[0]} .. {days[-1]})")
    lines.append(f"  already in the cache: {plan.cached} objects; partial downloads: "
                 f"{plan.partial_bytes / 1e6:.1f} MB to resume from")
    lines.append(f"  to download: {est.objects} objects, {est.bytes / GB:.3f} GB ({est.bytes:,} bytes)")
    lines.append(f"  ESTIMATED COST (an estimate, billed by AWS to your account): transfer "
                 f"{est.bytes / GB:.3f} GB x ${est.usd_per_gb:.3f}/GB = ${est.usd_transfer:.2f}; requests "
                 f"{est.gets} GET x ${USD_PER_1K_GET}/1000 + {est.lists} LIST x ${USD_PER_1K_LIST}/1000 = "
                 f"${est.usd_requests:.4f}; total ~${est.usd_total:.2f}")
    lines.append("  (internet transfer rate is region-dependent: --usd-per-gb; to an EC2 instance in the "
                 "bucket's region transfer is free; sources in docs/data.md)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- download
def _part_path(dest: Path, ref: ObjectRef) -> Path:
    tag = "".join(ch for ch in ref.etag if ch.isalnum())[:16] or "noetag"
    return dest.with_name(f"{dest.name}.{tag}.part")


def download_one(client: Any, ref: ObjectRef, cache: Path, on_bytes: Callable[[int], None] = lambda n: None) -> str:
    """Fetch one object into the cache; returns "cached", "downloaded" or "resumed"."""
    from botocore.exceptions import ClientError

    dest = cache / ref.bucket / ref.key
    if dest.is_file() and dest.stat().st_size == ref.size:
        return "cached"
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(dest, ref)
    for stale in dest.parent.glob(f"{dest.name}.*.part"):
        if stale != part:
            stale.unlink()  # an older version of the object
    for attempt in (0, 1):
        have = part.stat().st_size if part.is_file() else 0
        if have > ref.size:
            part.unlink()
            have = 0
        kw: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key, "RequestPayer": "requester"}
        if ref.etag:
            kw["IfMatch"] = ref.etag
        if have:
            kw["Range"] = f"bytes={have}-"
        if have < ref.size:
            try:
                body = client.get_object(**kw)["Body"]
            except ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                if code in ("PreconditionFailed", "412", "InvalidRange", "416") and attempt == 0:
                    part.unlink(missing_ok=True)  # the object changed since it was listed
                    continue
                raise FetchError(f"s3://{ref.bucket}/{ref.key}: {code or e}") from None
            with open(part, "ab") as f:
                for chunk in body.iter_chunks(1 << 20):
                    f.write(chunk)
                    on_bytes(len(chunk))
        got = part.stat().st_size
        if got != ref.size:
            if attempt == 0:
                part.unlink()
                continue
            raise FetchError(f"s3://{ref.bucket}/{ref.key}: got {got} bytes, listed {ref.size}")
        os.replace(part, dest)
        return "resumed" if have else "downloaded"
    raise FetchError(f"s3://{ref.bucket}/{ref.key}: could not be downloaded")


def download(client: Any, plan: FetchPlan, cache: Path, workers: int = 8, progress: bool = True) -> FetchReport:
    from tqdm import tqdm

    rep = FetchReport(planned=len(plan.objects), cached=plan.cached)
    total = sum(r.size for r in plan.todo) - plan.partial_bytes
    with tqdm(total=total, unit="B", unit_scale=True, desc="fetch", disable=not progress) as bar, \
            ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        def on_bytes(n: int) -> None:
            bar.update(n)
            rep.bytes += n

        futs = {pool.submit(download_one, client, ref, cache, on_bytes): ref for ref in plan.todo}
        for fut in as_completed(futs):
            ref = futs[fut]
            try:
                state = fut.result()
            except (FetchError, OSError) as e:
                rep.failed.append((f"s3://{ref.bucket}/{ref.key}", str(e)))
                continue
            if state == "cached":
                rep.cached += 1
            elif state == "resumed":
                rep.resumed += 1
            else:
                rep.downloaded += 1
    return rep


def fetch(start: dt.date, end: dt.date, datasets: Sequence[str], coins: Sequence[str] | None = None,
          cache: Path = DEFAULT_CACHE, workers: int = 8, endpoint_url: str | None = None,
          region: str | None = None, yes: bool = False, dry_run: bool = False, usd_per_gb: float = USD_PER_GB,
          progress: bool = True, out: Callable[[str], None] = print,
          confirm: Callable[[str], str] | None = None) -> FetchReport:
    """Plan, print the cost estimate, then (after ``yes`` or a confirmation) download."""
    if end <= start:
        raise ConfigError(f"--to {end} must be after --from {start}")
    cache = Path(cache).expanduser()
    client = make_client(endpoint_url, region, workers)
    plan = plan_fetch(client, start, end, datasets, coins, cache)
    est = estimate(plan, usd_per_gb)
    out(describe(plan, est, start, end))
    rep = FetchReport(planned=len(plan.objects), cached=plan.cached, estimate=asdict(est))
    if dry_run or not plan.todo:
        return rep
    if not yes:
        ask = confirm or (input if sys.stdin.isatty() else None)
        if ask is None:
            raise ConfigError("record fetch: not a terminal; pass --yes to accept the estimate and download")
        if ask(f"download {est.bytes / GB:.3f} GB for ~${est.usd_total:.2f}? [y/N] ").strip().lower() not in ("y", "yes"):
            out("nothing downloaded")
            return rep
    got = download(client, plan, cache, workers, progress)
    got.estimate = rep.estimate
    out(f"downloaded {got.downloaded}, resumed {got.resumed}, already cached {got.cached}, "
        f"{got.bytes / 1e6:.1f} MB, failed {len(got.failed)} -> {cache}")
    return got


# ----------------------------------------------------------------------------- CLI
def _date(s: str) -> dt.date:
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a date (YYYY-MM-DD)") from None


def add_fetch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="start", type=_date, required=True, help="first day (UTC), YYYY-MM-DD")
    p.add_argument("--to", dest="end", type=_date, required=True, help="day after the last (excluded)")
    p.add_argument("--datasets", default="asset_ctxs", help=f"comma list of {', '.join(DATASETS)}")
    p.add_argument("--coins", default=None, help="l2book only: these coins (other datasets hold all coins)")
    p.add_argument("--cache", default=str(DEFAULT_CACHE), help="local cache folder (mirrors the buckets)")
    p.add_argument("--workers", type=int, default=8, help="parallel downloads")
    p.add_argument("--endpoint-url", default=None, help="an S3-compatible endpoint instead of AWS")
    p.add_argument("--region", default=None, help=f"client region (default: AWS config, else {DEFAULT_REGION})")
    p.add_argument("--usd-per-gb", type=float, default=USD_PER_GB, help="transfer price for the estimate")
    p.add_argument("--yes", action="store_true", help="accept the estimate and download without asking")
    p.add_argument("--dry-run", action="store_true", help="print the estimate only")


def run_fetch(args: argparse.Namespace) -> int:
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    coins = [c.strip() for c in args.coins.split(",") if c.strip()] if args.coins else None
    rep = fetch(args.start, args.end, datasets, coins, Path(args.cache), args.workers, args.endpoint_url,
                args.region, args.yes, args.dry_run, args.usd_per_gb)
    print(json.dumps({k: v for k, v in asdict(rep).items() if k != "failed"} | {"failed": rep.failed[:20]}))
    return 1 if rep.failed else 0


__all__ = ["fetch", "plan_fetch", "estimate", "download", "download_one", "make_client", "FetchPlan",
           "FetchReport", "Estimate", "ObjectRef", "FetchError", "DATASETS", "ARCHIVE_BUCKET", "NODE_BUCKET",
           "DEFAULT_CACHE", "USD_PER_GB", "add_fetch_arguments", "run_fetch"]
