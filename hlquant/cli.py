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
    hlquant walkforward [overrides] SEARCH...  optimize in sample, trade out of sample, per fold
    hlquant runs list|show|compare ...         past runs and sweeps: ranked, one in full, two side by side
    hlquant new strategy NAME                  a strategy file and its config from a template
    hlquant generate-data --out DIR [--days N] regenerate sample data

Every command answers --help. Hydra commands take the usual Hydra flags (``-m``,
``--cfg job``...). The config tree (conf/) ships inside the package (hlquant/conf);
``--config-dir DIR`` (anywhere on the line) or ``$HLQUANT_CONF`` layers your own
folder on top (its strategy/mine.yaml is ``strategy=mine``). Errors print one
line (``error: ...``); ``HLQUANT_DEBUG=1`` shows tracebacks.
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
HYDRA_COMMANDS = ("run", "backtest", "paper", "live", "component", "walkforward")

HELP = {
    "run": "hlquant run [mode=sim|paper|live] [hydra overrides...]\n"
           "  Run the strategy in the configured mode (default mode=sim: a backtest on the data group).",
    "backtest": "hlquant backtest [hydra overrides...]   (= hlquant run mode=sim)\n"
                "  e.g. strategy=ma_cross risk.max_leverage=2; -m strategy.fast=5,10 for a sweep;\n"
                "  -m hydra/sweeper=search 'strategy.fast=range(5,30)' for an Optuna search.\n"
                "  Writes run.json (status running/ok/failed), metrics.json, report.png, report.html\n"
                "  (self-contained), equity/fills/funding/trades/prices Parquet and the audit log to a\n"
                "  run folder of its own (runs/<date>/<time>-<strategy>[-N]).",
    "walkforward": "hlquant walkforward [hydra overrides...] SEARCH...\n"
                   "  Walk-forward: on each fold's in-sample window run the configured sweep over SEARCH\n"
                   "  (sweep overrides: strategy.fast=5,10,20 'strategy.slow=range(50,200,50)'; add\n"
                   "  hydra/sweeper=search hydra.sweeper.n_trials=N for Optuna), take the best job by\n"
                   "  sweep.objective, run it on the next out-of-sample window, chain the out-of-sample\n"
                   "  equity. Writes walkforward.csv/html, oos_equity.parquet, one folder per fold.",
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


def config_help() -> str:
    """The config groups with their default option and the others, and the top-level keys
    with their defaults (read from the config tree, the user's folder included)."""
    import yaml

    from hlquant.config.compose import conf_dir, user_conf_dir

    roots = [Path(conf_dir())]
    user = user_conf_dir()
    if user is not None:
        roots.insert(0, user)
    top = yaml.safe_load((Path(conf_dir()) / "config.yaml").read_text())
    defaults = {}
    for d in top.get("defaults", []):
        if isinstance(d, dict):
            for k, v in d.items():
                if not k.startswith("override"):
                    defaults[k] = v
    lines = ["config groups (group=option; default first):"]
    groups = sorted({p.name for r in roots for p in r.iterdir() if p.is_dir() and p.name not in
                     ("hydra", "__pycache__")} | set(defaults))
    for g in groups:
        opts = sorted({f.stem for r in roots if (r / g).is_dir() for f in (r / g).glob("*.yaml")})
        dflt = str(defaults.get(g, ""))
        typed = " (typed: keys and defaults in --cfg job)" if g in ("risk", "router", "venue", "live") else ""
        lines.append(f"  {g:<9} {dflt or '-':<14} others: {', '.join(o for o in opts if o != dflt) or '-'}{typed}")
    lines.append("top-level keys (defaults):")
    for k in ("progress", "sweep", "walkforward", "features", "agents", "strategy_path"):
        if k in top:
            lines.append(f"  {k}: {top[k]}")
    lines.append("every key with its default: hlquant backtest --cfg job; a config folder of your own:"
                 " --config-dir DIR")
    return "\n".join(lines)


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
            from hlquant.core.secrets import redact_text

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
    from hlquant.core.secrets import redact_text

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

    from hlquant.config.compose import PKG_CONF
    from hlquant.config.schema import register_schemas

    register_schemas()
    sys.argv = [sys.argv[0], *argv]
    task = _report_errors(_redact_hydra_dumps(task_fn))
    hydra.main(config_path=PKG_CONF, config_name="config", version_base="1.3")(task)()


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
    print(f"report: {result.out_dir or out}")
    for k, p in sorted(result.files.items()):
        print(f"  {k}: {p}")
    if s["reconcile"]:
        print(f"WARNING: portfolio differs from venue: {s['reconcile']}")
    print_warnings(result.artifacts.warnings)
    return None


def print_warnings(warnings: list[Any]) -> None:
    """At the end of a run, where it is seen: notes for caveats, a banner for the rest."""
    from hlquant.report.metrics import WarningCode

    loud = [w for w in warnings if w.code is not WarningCode.SHORT_RUN]
    for w in warnings:
        if w.code is WarningCode.SHORT_RUN:
            print(f"note: {w.message}")
    if loud:
        bar = "!" * 78
        print(f"\n{bar}", file=sys.stderr)
        for w in loud:
            print(f"WARNING ({w.code}): {w.message}", file=sys.stderr)
        print(bar, file=sys.stderr)


def _walkforward_task(overrides: list[str]):
    def task(cfg) -> None:
        from hydra.core.hydra_config import HydraConfig

        from hlquant.backtest.walkforward import run_walkforward

        out = Path(HydraConfig.get().runtime.output_dir)
        res = run_walkforward(cfg, overrides, out)
        print()
        print(res["table"].to_string(index=False, float_format=lambda v: f"{v:,.4g}"))
        m = res["metrics"]
        print(f"\nout of sample, chained: total_return {m['total_return']:+.2%}, sharpe {m['sharpe']:.3g}, "
              f"max_drawdown {m['max_drawdown']:.2%}, trades {int(m['n_trades'])}")
        print(f"walk-forward: {out}\n  page: {res['page']}")

    return task


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
    from hlquant.core.secrets import looks_secret

    for a in args:
        key, _, value = a.lstrip("+~").partition("=")
        if value and looks_secret(key, value):
            raise ConfigError(f"{key}: secrets are not accepted on the command line; put the key in "
                              f"$HLQUANT_PRIVATE_KEY (live.key_env) or a file named by live.key_file")


def _main(argv: list[str]) -> None:
    from hlquant.config.compose import USER_CONF_ENV, expand_home, split_config_dir, user_conf_dir

    argv, config_dir = split_config_dir(argv)
    argv = expand_home(argv)
    if config_dir is not None:  # layered over the bundled tree here and in every child process
        os.environ[USER_CONF_ENV] = str(user_conf_dir(config_dir))
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return
    cmd, rest = argv[0], argv[1:]
    if rest[:1] in (["-h"], ["--help"]) and cmd in HELP:
        print(HELP[cmd])
        if cmd in HYDRA_COMMANDS:
            print(config_help())
        return
    if cmd in ("run", *SHORTCUTS, "component", "walkforward"):
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
    elif cmd == "walkforward":
        given = [a.split("=", 1)[1] for a in rest if a.startswith("mode=")]
        if given and given[-1] != "sim":
            raise ConfigError(f"mode={given[-1]}: a walk-forward is a backtest (mode=sim)")
        from hlquant.backtest.walkforward import split_search

        base, _space = split_search(rest)  # the search space goes to the in-sample sweeps only
        args = [*[a for a in base if not a.startswith("mode=")], "mode=sim"]
        if not any(a.startswith("hydra.run.dir=") for a in args):
            args.append("hydra.run.dir=runs/${now:%Y-%m-%d}/${now:%H-%M-%S}-walkforward-${strategy.name}")
        _hydra_main(_walkforward_task(rest), args)
    elif cmd == "runs":
        from hlquant.backtest.runs import runs_main

        raise SystemExit(runs_main(rest))
    elif cmd == "new":
        from hlquant.research.commands import new_main

        raise SystemExit(new_main(rest))
    elif cmd == "generate-data":
        from hlquant.data.generate import main as gen_main

        sys.argv[0] = "hlquant generate-data"  # argparse's prog in usage and --help
        gen_main(rest)
    else:
        raise ConfigError(f"unknown command {cmd!r}; commands: run, backtest, paper, live, component, "
                          f"ingest, record, audit, replay, parity, walkforward, runs, new, generate-data "
                          f"(hlquant --help)")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    _redact_logs()
    _report_errors(_main)(argv)


if __name__ == "__main__":
    main()
