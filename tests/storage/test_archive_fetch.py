"""``hlquant record fetch`` against a local S3-compatible server (moto's server mode) holding the
fixture files under their real keys. The server refuses reads without ``x-amz-request-payer:
requester``, as S3 does for requester-pays buckets, and logs every request."""

from __future__ import annotations

import datetime as dt
import threading
import urllib.request
from pathlib import Path

import boto3  # the dev extra installs moto[server], which brings boto3 (archive extra)
import pytest
from botocore.exceptions import ClientError
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from hlquant.storage.fetch import GB, USD_PER_GB, ObjectRef, _part_path, fetch
from hlquant.storage.recorder import main as record_main

FIX = Path(__file__).resolve().parent.parent / "data" / "archive"
BUCKETS = ("hyperliquid-archive", "hl-mainnet-node-data")
REGION = "ap-northeast-1"


class RequesterPays:
    """WSGI middleware: S3's rule for requester-pays buckets (a read without the header is
    refused with 403), plus a log of (method, path, query, payer header, range)."""

    def __init__(self, app):
        self.app = app
        self.log: list[tuple[str, str, str, str | None, str | None]] = []

    def __call__(self, environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        payer = environ.get("HTTP_X_AMZ_REQUEST_PAYER")
        self.log.append((method, path, environ.get("QUERY_STRING", ""), payer, environ.get("HTTP_RANGE")))
        if method in ("GET", "HEAD") and payer != "requester":
            body = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
                    b"<Message>Access Denied</Message></Error>")
            start_response("403 Forbidden", [("Content-Type", "application/xml"),
                                             ("Content-Length", str(len(body)))])
            return [body if method == "GET" else b""]
        return self.app(environ, start_response)

    def object_gets(self) -> list[tuple[str, str | None]]:
        return [(p, rng) for m, p, q, _, rng in self.log if m == "GET" and "list-type" not in q
                and p.count("/") > 1]


@pytest.fixture()
def aws_env(monkeypatch, tmp_path):
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
                 "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
                 "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
                 "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture()
def s3(aws_env):
    """A moto S3 server on a free loopback port with the fixtures uploaded in the bucket layout."""
    mw = RequesterPays(DomainDispatcherApplication(create_backend_app))
    srv = make_server("127.0.0.1", 0, mw, threaded=True, request_handler=MotoRequestHandler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    url = f"http://127.0.0.1:{srv.server_port}"
    reset = urllib.request.Request(url + "/moto-api/reset", method="POST")  # moto keeps state per process
    urllib.request.urlopen(reset, timeout=10).close()
    owner = boto3.client("s3", endpoint_url=url, region_name=REGION)
    for b in BUCKETS:
        owner.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": REGION})
        for f in sorted((FIX / b).rglob("*.lz4")):
            owner.put_object(Bucket=b, Key=f.relative_to(FIX / b).as_posix(), Body=f.read_bytes())
    mw.log.clear()
    try:
        yield url, mw, owner
    finally:
        urllib.request.urlopen(reset, timeout=10).close()
        srv.shutdown()
        th.join(10)


def run(url, cache, datasets, start="2025-03-22", end="2025-03-23", coins=None, **kw):
    lines: list[str] = []
    rep = fetch(dt.date.fromisoformat(start), dt.date.fromisoformat(end), datasets, coins, cache,
                workers=4, endpoint_url=url, yes=True, progress=False, out=lines.append, **kw)
    return rep, lines


def test_fetch_real_layout_requester_pays_and_estimate_first(s3, tmp_path):
    url, mw, owner = s3
    # the server really enforces it: a read without RequestPayer is refused
    with pytest.raises(ClientError, match="AccessDenied|403"):
        owner.get_object(Bucket="hyperliquid-archive", Key="asset_ctxs/20250322.csv.lz4")
    mw.log.clear()
    cache = tmp_path / "cache"
    rep, lines = run(url, cache, ["asset_ctxs", "l2book", "trades"], coins=["BTC"])
    want = ["hyperliquid-archive/asset_ctxs/20250322.csv.lz4",
            "hyperliquid-archive/market_data/20250322/10/l2Book/BTC.lz4",
            "hl-mainnet-node-data/node_trades/hourly/20250322/10.lz4",
            "hl-mainnet-node-data/node_trades/hourly/20250322/11.lz4"]
    got = sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file())
    assert got == sorted(want) and rep.downloaded == 4 and not rep.failed
    for k in want:
        assert (cache / k).read_bytes() == (FIX / k).read_bytes(), k
    # every request of the run carried RequestPayer=requester (the server refuses the rest anyway)
    assert mw.log and all(payer == "requester" for *_, payer, _ in mw.log)
    assert len(mw.object_gets()) == 4
    # the estimate is printed before the download, from the listed sizes
    size = sum((FIX / k).stat().st_size for k in want)
    assert "ESTIMATED COST" in lines[0] and lines[-1].startswith("downloaded 4")
    assert f"{size:,} bytes" in lines[0] and "requester pays" in lines[0]
    est = rep.estimate
    assert est["bytes"] == size and est["gets"] == 4
    assert est["usd_transfer"] == pytest.approx(size / GB * USD_PER_GB)
    assert est["usd_requests"] == pytest.approx(4 * 0.0004 / 1000 + est["lists"] * 0.005 / 1000)
    assert f"${est['usd_transfer'] + est['usd_requests']:.2f}" in lines[0]


def test_fetch_resumes_a_partial_file_and_a_rerun_downloads_nothing(s3, tmp_path):
    url, mw, owner = s3
    cache = tmp_path / "cache"
    key = "node_trades/hourly/20250322/10.lz4"
    data = (FIX / "hl-mainnet-node-data" / key).read_bytes()
    head = owner.head_object(Bucket="hl-mainnet-node-data", Key=key, RequestPayer="requester")
    ref = ObjectRef("hl-mainnet-node-data", key, len(data), head["ETag"])
    part = _part_path(cache / ref.bucket / key, ref)
    part.parent.mkdir(parents=True)
    half = len(data) // 2
    part.write_bytes(data[:half])  # an interrupted earlier run
    mw.log.clear()
    rep, lines = run(url, cache, ["trades"])
    assert rep.resumed == 1 and rep.downloaded == 1 and not part.exists()
    assert (cache / ref.bucket / key).read_bytes() == data
    ranges = dict(mw.object_gets())
    assert ranges[f"/hl-mainnet-node-data/{key}"] == f"bytes={half}-"  # only the missing half
    assert rep.estimate["bytes"] == len(data) - half + (FIX / "hl-mainnet-node-data/node_trades/hourly/20250322/11.lz4"
                                                        ).stat().st_size
    assert rep.bytes == rep.estimate["bytes"]
    mw.log.clear()
    again, lines = run(url, cache, ["trades"])
    assert again.downloaded == again.resumed == 0 and again.cached == again.planned == 2
    assert mw.object_gets() == [] and "to download: 0 objects" in lines[0]


def test_fetch_fills_takes_the_neighbour_hours_of_the_range(s3, tmp_path):
    url, mw, owner = s3
    body = (FIX / "hl-mainnet-node-data/node_fills_by_block/hourly/20250727/9.lz4").read_bytes()
    for k in ("node_fills_by_block/hourly/20250726/22.lz4", "node_fills_by_block/hourly/20250726/23.lz4"):
        owner.put_object(Bucket="hl-mainnet-node-data", Key=k, Body=body)
    cache = tmp_path / "cache"
    rep, lines = run(url, cache, ["fills"], start="2025-07-27", end="2025-07-28")
    got = sorted(p.relative_to(cache / "hl-mainnet-node-data").as_posix() for p in cache.rglob("*.lz4"))
    assert got == ["node_fills_by_block/hourly/20250726/23.lz4"] + [
        f"node_fills_by_block/hourly/20250727/{h}.lz4" for h in (10, 11, 9)]
    assert "node_fills: no files for 1 day(s) (20250727 .. 20250727)" in lines[0]  # only by_block that day


def test_fetch_cli_dry_run_and_refusals_are_one_line(s3, tmp_path, capsys, monkeypatch):
    url, mw, _ = s3
    cache = tmp_path / "cache"
    args = ["fetch", "--from", "2025-03-22", "--to", "2025-03-23", "--datasets", "asset_ctxs",
            "--endpoint-url", url, "--cache", str(cache)]
    assert record_main([*args, "--dry-run"]) == 0
    assert "ESTIMATED COST" in capsys.readouterr().out and not cache.exists()
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert record_main(args) == 2  # no terminal to ask and no --yes: nothing is downloaded
    assert "--yes" in capsys.readouterr().err and not cache.exists()
    assert record_main([*args, "--datasets", "candles"]) == 2
    assert "unknown 'candles'" in capsys.readouterr().err
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert record_main([*args, "--yes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "AWS_ACCESS_KEY_ID" in err[0] and "requester pays" in err[0]
