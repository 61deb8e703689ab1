"""``hlquant`` command line.

    hlquant backtest [hydra overrides...]      e.g. strategy=ma_cross risk.max_leverage=2
    hlquant backtest -m strategy.fast=5,10 strategy.slow=50,100   (parallel sweep)
    hlquant paper [overrides...]               same strategy, live data, simulated fills
    hlquant live [overrides...]                pre-flight check, then signed orders (testnet default)
    hlquant component agent NAME|risk|router NAME|ingest [overrides...]
                                               one live component as its own process (Redis)
    hlquant ingest files|hyperliquid|graphql ...   history into PostgreSQL (see --help)
    hlquant record live --coins BTC,ETH | import PATH...   record the live feed / import the archive
    hlquant replay RUN_DIR                     re-run a session from its audit log
    hlquant generate-data --out DIR [--days N] regenerate sample data

Hydra commands take the usual Hydra flags (``-m``, ``--cfg job``...). The
config tree lives in ``conf/`` beside the package (or ``$HLQUANT_CONF``).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("hlquant")


def conf_dir() -> str:
    env = os.environ.get("HLQUANT_CONF")
    if env:
        return str(Path(env).resolve())
    here = Path(__file__).resolve().parent.parent / "conf"
    if not here.is_dir():
        raise SystemExit(f"hlquant: config directory not found at {here}; set HLQUANT_CONF")
    return str(here)


def _hydra_main(task_fn, argv: list[str]) -> None:
    import hydra

    sys.argv = [sys.argv[0], *argv]
    hydra.main(config_path=conf_dir(), config_name="config", version_base="1.3")(task_fn)()


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


def _session_task(mode: str, overrides: list[str]):
    def task(cfg) -> None:
        import asyncio

        from hydra.core.hydra_config import HydraConfig

        from hlquant.live.session import run_session

        out = Path(HydraConfig.get().runtime.output_dir)
        if mode == "live":
            from hlquant.live.preflight import preflight

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

    return task


def _supervise_components(cfg, overrides: list[str], out: Path) -> None:
    """``live.topology=processes``: one process per component, supervised."""
    import asyncio
    import signal
    import subprocess

    from hlquant.config.build import build_agents
    from hlquant.live.supervisor import Supervisor

    sup = Supervisor(out / "health.json")
    base = [sys.executable, "-m", "hlquant.cli", "component"]
    user = [o for o in overrides if not o.startswith("hydra.")]

    def starter(args: list[str], tag: str):
        def start():
            log_f = open(out / f"{tag}.log", "ab")
            return subprocess.Popen([*base, *args, *user, f"hydra.run.dir={out / tag}"],
                                    stdout=log_f, stderr=subprocess.STDOUT)
        return start

    for i in range(int(cfg.live.router_replicas)):
        sup.add_process(f"router-r{i + 1}", starter(["router", f"r{i + 1}"], f"router-r{i + 1}"))
    sup.add_process("risk", starter(["risk"], "risk"))
    for a in build_agents(cfg.strategy):
        sup.add_process(f"agent-{a.name}", starter(["agent", a.name], f"agent-{a.name}"))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if cfg.live.duration_s:
            loop.call_later(float(cfg.live.duration_s), stop.set)
        await sup.run(stop)

    asyncio.run(main())
    print(f"components stopped; health: {sup.health()}")


def _component_task(kind: str, name: str):
    def task(cfg) -> None:
        import asyncio

        from hydra.core.hydra_config import HydraConfig

        from hlquant.live import components as comp

        out = Path(HydraConfig.get().runtime.output_dir)
        if kind == "agent":
            res = asyncio.run(comp.run_agent(cfg, name, out, handle_signals=True))
        elif kind == "risk":
            res = asyncio.run(comp.run_risk(cfg, out, handle_signals=True))
        elif kind == "router":
            res = comp.run_router(cfg, name, out)
        elif kind == "ingest":
            res = asyncio.run(comp.run_ingest(cfg, handle_signals=True))
        else:
            raise SystemExit(f"unknown component {kind!r}: agent, risk, router, ingest")
        print(f"{kind} {name}: {res}")

    return task


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return
    cmd, rest = argv[0], argv[1:]
    if cmd == "backtest":
        _hydra_main(_backtest_task, rest)
    elif cmd == "record":
        from hlquant.storage.recorder import main as record_main

        raise SystemExit(record_main(rest))
    elif cmd == "ingest":
        from hlquant.storage.ingest import main as ingest_main

        raise SystemExit(ingest_main(rest))
    elif cmd == "component":
        if not rest:
            raise SystemExit("usage: hlquant component agent NAME|risk|router NAME|ingest [overrides]")
        kind = rest[0]
        needs_name = kind in ("agent", "router")
        if needs_name and len(rest) < 2:
            raise SystemExit(f"usage: hlquant component {kind} NAME [overrides]")
        name = rest[1] if needs_name else kind
        args = rest[2:] if needs_name else rest[1:]
        _hydra_main(_component_task(kind, name), ["mode=live", *args])
    elif cmd in ("paper", "live"):
        _hydra_main(_session_task(cmd, rest), [f"mode={cmd}", *rest])
    elif cmd == "replay":
        if len(rest) != 1:
            raise SystemExit("usage: hlquant replay RUN_DIR")
        from hlquant.backtest.run import replay

        rep = replay(rest[0])
        print(rep)
        raise SystemExit(0 if rep.identical else 1)
    elif cmd == "generate-data":
        from hlquant.data.generate import main as gen_main

        gen_main(rest)
    else:
        raise SystemExit(f"hlquant: unknown command {cmd!r}\n{__doc__}")


if __name__ == "__main__":
    main()
