"""Secrets (issue 11, item 8), as a user meets them: a key on the command line is refused
with a message saying where keys go; a 64-hex secret (with or without 0x) that sits in a
config file reaches no file the run writes (Hydra's dumps, run.json, metrics.json,
report.html, session.json, status.json, the audit log, the logs)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hlquant.core.secrets import redact_text

ROOT = Path(__file__).resolve().parents[2]
KEY_0X = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"  # with 0x
KEY_BARE = "ab8c5e6ff3b3c1d1a4e1f0e2d3c4b5a69788796a5b4c3d2e1f00112233445566"  # without


def hlquant(*args: str, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    e.pop("HLQUANT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "hlquant.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**e, **(env or {})})


@pytest.mark.parametrize("cmd", [["backtest"], ["paper"], ["run", "mode=live"], ["component", "risk"]])
@pytest.mark.parametrize("arg", [
    "+live.private_key=not-even-hex",          # a secret-looking key, whatever its value
    f"+live.private_key={KEY_0X}",
    f"strategy.fast={KEY_0X}",                 # 64 hex digits under any key, with 0x
    f"+strategy.note={KEY_BARE}",              # and without
    f"strategy.fast=5,{KEY_BARE[:-1]}F",       # inside a sweep list, upper case
])
def test_a_key_on_the_command_line_is_refused_saying_where_keys_go(tmp_path, cmd, arg):
    run_dir = tmp_path / "run"
    p = hlquant(*cmd, arg, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert "HLQUANT_PRIVATE_KEY" in lines[0] and "live.key_file" in lines[0]
    value = arg.partition("=")[2]
    assert value not in p.stdout + p.stderr
    assert not run_dir.exists()  # refused before Hydra wrote anything


LEAKY_STRATEGY = '''
    """A strategy that spreads its parameters around: into a log line, an intent's reason
    and an exception message (the secrets come from the config, as a careless user's would)."""
    import logging

    from strategies.ma_cross import MACross

    log = logging.getLogger("leaky")


    class Leaky(MACross):
        defaults = {**MACross.defaults, "note": "", "bare": ""}

        def setup(self, ctx):
            super().setup(ctx)
            log.warning("leaky starts with params %s", self.params)

        def decide(self, ctx):
            intent = super().decide(ctx)
            if intent is not None:
                intent = ctx.target(intent.target, reason=f"cross, note {self.params['note']}")
            return intent


    class Crashy(MACross):
        defaults = {**MACross.defaults, "bare": ""}

        def decide(self, ctx):
            raise ValueError(f"cannot trade with {self.params['bare']}")
'''

LEAKY_CONFIG = f'''
    name: leaky
    fast: 3
    slow: 8
    size_usd: 10000.0
    symbols: [BTC]
    wallet_note: "{KEY_0X}"
    agents:
      - cls: leaky_strategy:Leaky
        name: leaky
        symbols: ${{strategy.symbols}}
        params:
          fast: ${{strategy.fast}}
          slow: ${{strategy.slow}}
          size_usd: ${{strategy.size_usd}}
          note: ${{strategy.wallet_note}}
          bare: {KEY_BARE}
      - cls: leaky_strategy:Crashy
        name: crashy
        symbols: ${{strategy.symbols}}
        params: {{fast: 3, slow: 8, bare: {KEY_BARE}}}
'''


@pytest.fixture
def leaky_conf(tmp_path) -> Path:
    """A config tree (``HLQUANT_CONF``) whose strategy file holds two secrets, and the
    strategy module beside the working directory."""
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    (conf / "strategy" / "leaky.yaml").write_text(textwrap.dedent(LEAKY_CONFIG).lstrip())
    (tmp_path / "leaky_strategy.py").write_text(textwrap.dedent(LEAKY_STRATEGY).lstrip())
    return conf


def file_texts(run_dir: Path) -> dict[Path, str]:
    """Every file under ``run_dir`` as text; Parquet files decoded (their pages are compressed)."""
    out = {}
    for p in sorted(run_dir.rglob("*")):
        if not p.is_file():
            continue
        if p.suffix == ".parquet":
            out[p] = pq.read_table(p).to_pandas().to_csv()
        else:
            out[p] = p.read_bytes().decode("latin-1")
    return out


def assert_no_secret(texts: dict[Path, str]) -> None:
    leaks = [str(p) for p, t in texts.items()
             for key in (KEY_0X[2:], KEY_BARE) if key in t.lower()]
    assert not leaks, f"secret written to {leaks}"


def test_secrets_in_a_config_file_reach_no_file_of_a_backtest(tmp_path, leaky_conf):
    run_dir = tmp_path / "run"
    p = hlquant("backtest", "strategy=leaky", "data.symbols=[BTC]", "data.end=2026-01-06",
                "agents.on_error=quarantine", "progress=false", f"hydra.run.dir={run_dir}",
                cwd=tmp_path, env={"HLQUANT_CONF": str(leaky_conf)})
    assert p.returncode == 0, p.stderr[-3000:]
    texts = file_texts(run_dir)
    assert_no_secret(texts)
    assert KEY_0X[2:] not in p.stdout + p.stderr and KEY_BARE not in p.stdout + p.stderr
    # the secrets did reach each kind of file, redacted: the test is not vacuous
    for name in (".hydra/config.yaml", "run.json", "metrics.json", "report.html", "cli.log"):
        assert "***" in texts[run_dir / name], name
    audit = "".join(t for q, t in texts.items() if "audit" in q.parts)
    assert "note ***" in audit and "cannot trade with ***" in audit  # Intent reason, AgentError
    assert "leaky starts with params" in texts[run_dir / "cli.log"]


def test_secrets_in_a_config_file_reach_no_file_of_a_paper_session(tmp_path, leaky_conf):
    from hlquant.connectors.replay import ReplayConnector
    from hlquant.data.loaders import load_sample
    from hlquant.fakeexchange.testing import running_fake_exchange

    md = load_sample()
    t0 = int(md.span()[0])
    md = md.select(symbols=["BTC"], start=t0, end=t0 + 12 * 3_600_000)
    run_dir = tmp_path / "paper"
    with running_fake_exchange() as fx:
        fut = fx.replay(iter(ReplayConnector(md)), speed=2400.0)
        p = hlquant("paper", "strategy=leaky", f"live.url={fx.url}", "live.duration_s=8",
                    f"hydra.run.dir={run_dir}", cwd=tmp_path, env={"HLQUANT_CONF": str(leaky_conf)})
        fut.cancel()
    assert p.returncode == 0, p.stderr[-3000:]
    texts = file_texts(run_dir)
    assert {"session.json", "status.json", "cli.log"} <= {q.name for q in texts}
    assert_no_secret(texts)
    assert "***" in texts[run_dir / "session.json"] and "***" in texts[run_dir / ".hydra" / "config.yaml"]
    assert "leaky starts with params" in texts[run_dir / "cli.log"]


def test_redact_text_covers_both_forms_and_leaves_shorter_hex():
    assert redact_text(f"a {KEY_0X} b {KEY_BARE.upper()} c") == "a *** b *** c"
    cloid = "0x" + "ab" * 16  # a cloid (16 bytes) or an address (20 bytes) is not a key
    address = "0x" + "cd" * 20
    assert redact_text(f"{cloid} {address}") == f"{cloid} {address}"
