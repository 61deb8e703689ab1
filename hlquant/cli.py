"""``hlquant`` command line.

    hlquant run [mode=sim|paper|live] [overrides...]   run the config's mode (default sim)
    hlquant backtest [overrides...]            = run mode=sim   (-m for a parallel sweep)
    hlquant paper [overrides...]               = run mode=paper (live data, simulated fills)
    hlquant live [overrides...]                = run mode=live  (pre-flight, then signed orders; testnet default)
    hlquant component ROLE [NAME] [overrides...]
                                               one role of live.topology=processes: ingest,
                                               features [fN], agent NAME, risk, router NAME
    hlquant ingest files|hyperliquid|graphql ...   history into PostgreSQL (see --help)
    hlquant record live|import|fetch ...       record the live feed; fetch and import the archives
    hlquant replay RUN_DIR                     re-run a session from its audit log
    hlquant audit verify RUN_DIR [--redis URL --namespace NS]   is the record complete?
    hlquant parity RUN_DIR [--out DIR]         a paper/live session beside its backtest on the same events
    hlquant generate-data --out DIR [--days N] regenerate sample data

Hydra commands take the usual Hydra flags (``-m``, ``--cfg job``...). The
config tree lives in ``conf/`` beside the package (or ``$HLQUANT_CONF``).
Errors print one line (``error: ...``); ``HLQUANT_DEBUG=1`` shows tracebacks.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hlquant.core.errors import ConfigError, HlquantError

log = logging.getLogger("hlquant")

MODES = ("sim", "paper", "live")
SHORTCUTS = {"backtest": "sim", "paper": "paper", "live": "live"}
ROLES = ("ingest", "features", "agent", "risk", "router")

HELP = {
    "run": "hlquant run [mode=sim|paper|live] [hydra overrides...]\n"
           "  Run the strategy in the configured mode (default mode=sim: a backtest on the data group).",
    "backtest": "hlquant backtest [hydra overrides...]   (= hlquant run mode=sim)\n"
                "  e.g. strategy=ma_cross risk.max_leverage=2; -m strategy.fast=5,10 for a sweep.\n"
                "  Writes metrics.json, report.png, report.html, the audit log and run.json to the run folder.",
    "paper": "hlquant paper [hydra overrides...]   (= hlquant run mode=paper)\n"
             "  Live market data (live.url for the fake exchange), fills by the SimVenue.",
    "live": "hlquant live [hydra overrides...]   (= hlquant run mode=live)\n"
            "  Pre-flight check, then signed orders. Testnet unless live.network=mainnet and "
            "live.confirm_mainnet=true;\n  the key comes from $HLQUANT_PRIVATE_KEY or live.key_file, never "
            "from the command line.",
    "component": "hlquant component ROLE [NAME] [hydra overrides...]\n"
                 "  ROLE: ingest | features [fN] | agent NAME | risk | router NAME\n"
                 "  One process of live.topology=processes (the supervisor of `hlquant live` starts them all).",
    "replay": "hlquant replay RUN_DIR\n  Re-run a backtest from its run.json and audit log; exit 0 when every "
              "decision is identical.",
    "parity": "hlquant parity RUN_DIR [--out DIR]\n  Re-run a recorded paper/live session's strategy through the "
              "backtest on the market events it received;\n  write parity.html / parity.json (decisions, orders, "
              "fills side by side, latency, the PnL gap by cause).",
}


def _debug() -> bool:
    return os.environ.get("HLQUANT_DEBUG", "") not in ("", "0", "false")


_NETWORK_ERRORS = (("redis.exceptions", ("ConnectionError", "TimeoutError")),
                   ("psycopg", ("OperationalError",)), ("psycopg_pool", ("PoolTimeout",)),
                   ("websockets.exceptions", ("InvalidHandshake", "InvalidURI")))
"""Connection failures of client libraries that do not derive from OSError (requests' do)."""


def _network_errors() -> tuple[type[BaseException], ...]:
    """The classes of ``_NETWORK_ERRORS`` whose library is loaded (one that is not cannot
    have raised)."""
    out: list[type[BaseException]] = []
    for mod, names in _NETWORK_ERRORS:
        m = sys.modules.get(mod)
        out += [getattr(m, n) for n in names if m is not None and hasattr(m, n)]
    return tuple(out)


def _report_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """One line for the user (``error: ...``, secrets redacted), the traceback only with
    HLQUANT_DEBUG=1: hlquant's own errors, OS and network errors."""

    def wrapped(*a: Any, **kw: Any) -> Any:
        try:
            return fn(*a, **kw)
        except Exception as e:
            net = _network_errors()
            if not isinstance(e, (HlquantError, OSError, *net)) or _debug():
                raise
            from hlquant.audit.log import redact_text

            text = (str(e).strip().splitlines() or [type(e).__name__])[0]
            if isinstance(e, net) and not isinstance(e, (HlquantError, OSError)):
                text = f"{type(e).__module__.split('.')[0]}: {text}"
            print(f"error: {redact_text(text)}", file=sys.stderr)
            raise SystemExit(1) from None

    wrapped.__name__ = getattr(fn, "__name__", "task")
    return wrapped


def _redact_hydra_dumps(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Hydra writes ``.hydra/config.yaml``, ``hydra.yaml``, ``overrides.yaml`` (and a sweep's
    ``multirun.yaml``) before the task runs: rewrite them with secrets redacted first."""

    def task(cfg: Any) -> Any:
        from hydra.core.hydra_config import HydraConfig

        from hlquant.config.build import redact_yaml_files

        hc = HydraConfig.get()
        files = []
        if hc.output_subdir is not None:
            d = Path(hc.runtime.output_dir) / str(hc.output_subdir)
            files += [d / "config.yaml", d / "hydra.yaml", d / "overrides.yaml"]
        if hc.mode.name == "MULTIRUN":
            files.append(Path(str(hc.sweep.dir)) / "multirun.yaml")
        redact_yaml_files(files)
        return fn(cfg)

    task.__name__ = getattr(fn, "__name__", "task")
    return task


def _redact_logs() -> None:
    """Every log record (message and traceback) passes through ``redact_text``: Hydra's job
    log and the components' logs are files the project writes."""
    from hlquant.audit.log import redact_text

    base = logging.getLogRecordFactory()
    if getattr(base, "hlquant_redacts", False):
        return

    def factory(*a: Any, **kw: Any) -> logging.LogRecord:
        rec = base(*a, **kw)
        try:
            msg = rec.getMessage()
        except Exception:  # a malformed call: logging reports it when the record is formatted
            return rec
        clean = redact_text(msg)
        if clean != msg:
            rec.msg, rec.args = clean, None
        if rec.exc_info and not rec.exc_text:
            rec.exc_text = redact_text(logging.Formatter().formatException(rec.exc_info))
        return rec

    factory.hlquant_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def _hydra_main(task_fn: Callable[[Any], Any], argv: list[str]) -> None:
    import hydra

    from hlquant.config.compose import conf_dir
    from hlquant.config.schema import register_schemas

    register_schemas()
    sys.argv = [sys.argv[0], *argv]
    task = _report_errors(_redact_hydra_dumps(task_fn))
    hydra.main(config_path=conf_dir(), config_name="config", version_base="1.3")(task)()


def _backtest_task(cfg):
    """One backtest. In a sweep it prints nothing and returns its ``JobResult`` (metrics, files
    and node): the launching process prints one ranked table (``SweepSummary``)."""
    import time

    from hydra.core.hydra_config import HydraConfig

    from hlquant.backtest.run import run_backtest

    started = time.time()
    out = Path(HydraConfig.get().runtime.output_dir)
    multirun = HydraConfig.get().mode.name == "MULTIRUN"
    result = run_backtest(cfg, out_dir=out, progress=bool(cfg.progress) and not multirun)
    if multirun:
        from hlquant.backtest.sweep_job import job_result

        return job_result(cfg, result, started)
    m = result.metrics
    s = result.stats
    lines = [f"{k:>22}: {v:,.6g}" if isinstance(v, float) else f"{k:>22}: {v}" for k, v in m.items()]
    print(f"\n== {result.artifacts.name} ({s['events']:,} events, "
          f"{s['events_per_second']:,.0f} ev/s) ==")
    print("\n".join(lines))
    print(f"report: {out}")
    for k, p in sorted(result.files.items()):
        print(f"  {k}: {p}")
    if s["reconcile"]:
        print(f"WARNING: portfolio differs from venue: {s['reconcile']}")
    return None


def _session(cfg, mode: str, overrides: list[str]) -> None:
    import asyncio

    from hydra.core.hydra_config import HydraConfig

    from hlquant.live.session import run_session

    out = Path(HydraConfig.get().runtime.output_dir)
    if mode == "live":
        from hlquant.promote.preflight import preflight

        for check in preflight(cfg, live=True):
            print(check)
        if cfg.live.topology == "processes":
            _supervise_components(cfg, overrides, out)
            return
    dur = cfg.live.duration_s
    res = asyncio.run(run_session(cfg, mode, out_dir=out, duration_s=float(dur) if dur else None,
                                  handle_signals=True))
    s = res.status
    print(f"\n== {mode} session: {s['events']:,} events, equity {s['equity']:,.2f}, "
          f"positions {s['positions']}, reconnects {s['feed']['reconnects']} ==")
    print(f"session files: {out}")


def _run_task(overrides: list[str]):
    def task(cfg) -> float | None:
        mode = str(cfg.mode.name)
        if mode not in MODES:
            raise ConfigError(f"mode={mode!r}: expected one of {', '.join(MODES)}")
        if mode == "sim":
            return _backtest_task(cfg)
        _session(cfg, mode, overrides)
        return None

    return task


def _supervise_components(cfg, overrides: list[str], out: Path) -> None:
    """``live.topology=processes``: one process per role, supervised."""
    import asyncio
    import signal
    import subprocess

    from hlquant.config.build import build_agents
    from hlquant.live.supervisor import Supervisor

    sup = Supervisor(out / "health.json")
    base = [sys.executable, "-m", "hlquant.cli", "component"]
    user = [o for o in overrides if not o.startswith(("hydra.", "mode="))]

    def starter(args: list[str], tag: str):
        def start():
            log_f = open(out / f"{tag}.log", "ab")
            return subprocess.Popen([*base, *args, *user, f"hydra.run.dir={out / tag}"],
                                    stdout=log_f, stderr=subprocess.STDOUT)
        return start

    # start order = stop order reversed: agents stop first, routers last (shutdown cancels need them)
    for i in range(int(cfg.live.router_replicas)):
        sup.add_process(f"router-r{i + 1}", starter(["router", f"r{i + 1}"], f"router-r{i + 1}"))
    sup.add_process("risk", starter(["risk"], "risk"))
    sup.add_process("ingest", starter(["ingest"], "ingest"))
    for i in range(int(cfg.live.feature_replicas)):
        sup.add_process(f"features-f{i + 1}", starter(["features", f"f{i + 1}"], f"features-f{i + 1}"))
    for a in build_agents(cfg.strategy):
        sup.add_process(f"agent-{a.name}", starter(["agent", a.name], f"agent-{a.name}"))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if cfg.live.duration_s:
            loop.call_later(float(cfg.live.duration_s), stop.set)
        from hlquant.live.monitor import fleet_monitor

        async with fleet_monitor(cfg, sup):  # the page, from the shared Redis state
            await sup.run(stop)

    asyncio.run(main())
    print(f"components stopped; health: {sup.health()}")


def _component_task(role: str, name: str):
    def task(cfg) -> None:
        from hydra.core.hydra_config import HydraConfig

        out = Path(HydraConfig.get().runtime.output_dir)
        if role == "agent":
            from hlquant.live.roles.agent import run_agent

            res = run_agent(cfg, name, out)
        elif role == "risk":
            from hlquant.live.roles.risk import run_risk

            res = run_risk(cfg, out)
        elif role == "router":
            from hlquant.live.roles.router import run_router

            res = run_router(cfg, name, out)
        elif role == "features":
            from hlquant.live.roles.features import run_features

            res = run_features(cfg, name, out)
        else:
            from hlquant.live.roles.ingest import run_ingest

            res = run_ingest(cfg)
        print(f"{role} {name}: {res}")

    return task


def _refuse_secrets(args: list[str]) -> None:
    """A private key never goes on the command line (shell history, process list, Hydra's dumps)."""
    from hlquant.audit.log import looks_secret

    for a in args:
        key, _, value = a.lstrip("+~").partition("=")
        if value and looks_secret(key, value):
            raise ConfigError(f"{key}: secrets are not accepted on the command line; put the key in "
                              f"$HLQUANT_PRIVATE_KEY (live.key_env) or a file named by live.key_file")


def _main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return
    cmd, rest = argv[0], argv[1:]
    if rest[:1] in (["-h"], ["--help"]) and cmd in HELP:
        print(HELP[cmd])
        return
    if cmd in ("run", *SHORTCUTS, "component"):
        _refuse_secrets(rest)
    if cmd in SHORTCUTS:
        wanted = SHORTCUTS[cmd]
        given = [a.split("=", 1)[1] for a in rest if a.startswith("mode=")]
        if given and given[-1] != wanted:
            raise ConfigError(f"mode={given[-1]} contradicts `hlquant {cmd}` (mode={wanted}); "
                              f"use `hlquant run mode={given[-1]}`")
        _hydra_main(_run_task(rest), [*[a for a in rest if not a.startswith("mode=")], f"mode={wanted}"])
    elif cmd == "run":
        _hydra_main(_run_task(rest), rest)
    elif cmd == "component":
        if not rest or rest[0] not in ROLES:
            raise ConfigError(f"component: expected a role ({', '.join(ROLES)}), got {rest[:1] or 'none'}")
        role = rest[0]
        if role in ("agent", "router") and (len(rest) < 2 or "=" in rest[1]):
            raise ConfigError(f"component {role} needs a NAME: hlquant component {role} NAME [overrides]")
        named = role in ("agent", "router") or (role == "features" and len(rest) > 1 and "=" not in rest[1])
        name = rest[1] if named else ("f1" if role == "features" else role)
        args = rest[2:] if named else rest[1:]
        _hydra_main(_component_task(role, name), [*args, "mode=live"])
    elif cmd == "record":
        from hlquant.storage.recorder import main as record_main

        raise SystemExit(record_main(rest))
    elif cmd == "ingest":
        from hlquant.storage.ingest import main as ingest_main

        raise SystemExit(ingest_main(rest))
    elif cmd == "audit":
        from hlquant.audit.verify import main as audit_main

        raise SystemExit(audit_main(rest))
    elif cmd == "replay":
        if len(rest) != 1:
            raise ConfigError("usage: hlquant replay RUN_DIR")
        from hlquant.backtest.run import replay

        rep = replay(rest[0])
        print(rep)
        raise SystemExit(0 if rep.identical else 1)
    elif cmd == "parity":
        from hlquant.promote.parity import main as parity_main

        raise SystemExit(parity_main(rest))
    elif cmd == "generate-data":
        from hlquant.data.generate import main as gen_main

        gen_main(rest)
    else:
        raise ConfigError(f"unknown command {cmd!r}; commands: run, backtest, paper, live, component, "
                          f"ingest, record, audit, replay, parity, generate-data (hlquant --help)")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    _redact_logs()
    _report_errors(_main)(argv)


if __name__ == "__main__":
    main()
