"""Hydra callback: unique run folders, and after a sweep one ranked table from the values
the jobs returned.

Before Hydra creates a backtest's run folder or a sweep's folder, the callback
claims it (``runs.claim_dir``): a folder another run already has is replaced
by ``<dir>-2``, ``-3``..., so two runs started in the same second never write
to one folder.

The summary reads no job directory: each job returns a ``JobResult`` to this
process (see ``sweep_job``), so a cluster without shared storage still gets a
complete summary, and a sweep that got back fewer results than it launched
jobs exits non-zero instead of printing a partial table as a success.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import traceback
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write

from hlquant.backtest.runs import claim_dir
from hlquant.backtest.sweep_job import check_objective, start_sweep, take_results
from hlquant.core.errors import ConfigError

log = logging.getLogger(__name__)

OPTUNA = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def _direction_names(value: Any) -> list[str]:
    values = list(value) if isinstance(value, list | tuple | ListConfig) else [value]
    return [v.name if isinstance(v, Enum) else str(v).removeprefix("Direction.") for v in values]


def check_sweeper(config: DictConfig) -> None:
    """Refuse a search that would optimize another direction than ``sweep.direction``.

    The Optuna plugin minimizes unless told otherwise; hydra/sweeper=search
    (conf/hydra/sweeper/search.yaml) takes direction and seed from ``sweep``.
    """
    objective, direction = str(config.sweep.objective), str(config.sweep.direction)
    check_objective(objective, direction)
    sweeper = config.hydra.sweeper
    if sweeper.get("_target_") != OPTUNA:
        return
    dirs = _direction_names(sweeper.direction)
    if dirs != [direction]:
        raise ConfigError(
            f"hydra.sweeper.direction={','.join(dirs)} but sweep.direction={direction} "
            f"(sweep.objective={objective}): use -m hydra/sweeper=search, which follows "
            "sweep.direction and sweep.seed, or make the two agree")
    if sweeper.sampler.get("seed") is None:
        log.warning("hydra.sweeper.sampler.seed is null: this search is not reproducible "
                    "(hydra/sweeper=search seeds it from sweep.seed)")


def expected_jobs(config: DictConfig) -> int | None:
    """How many jobs the configured sweeper launches, when that is known up front."""
    sweeper = config.hydra.sweeper
    target = sweeper.get("_target_")
    if target == BASIC:
        from hydra.core.global_hydra import GlobalHydra
        from hydra.core.override_parser.overrides_parser import OverridesParser

        gh = GlobalHydra.instance()
        loader = gh.config_loader() if gh.is_initialized() else None  # glob() over config groups
        params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
        counts: dict[str, int] = {}
        for o in OverridesParser.create(config_loader=loader).parse_overrides(
                [*params, *config.hydra.overrides.task]):
            counts[o.get_key_element()] = (len(list(o.sweep_string_iterator()))
                                           if o.is_sweep_override() else 1)
        return math.prod(counts.values())
    if target == OPTUNA and "GridSampler" not in str(sweeper.sampler.get("_target_")):
        return int(sweeper.n_trials)
    return None


def _quoted(path: Path) -> str:
    s = str(path)
    return s if all(c.isalnum() or c in "/_-.:+" for c in s) else "'" + s.replace("'", "\\'") + "'"


def claim_run_dir(config: DictConfig) -> None:
    """A backtest run (mode=sim) gets a folder of its own (paper, live and their role
    processes keep theirs: a restarted component resumes its folder)."""
    if str(OmegaConf.select(config, "mode.name", default="sim")) != "sim":
        return
    with read_write(config.hydra):
        config.hydra.run.dir = str(claim_dir(Path(str(config.hydra.run.dir))))


def claim_sweep_dir(config: DictConfig) -> None:
    """The sweep gets a folder of its own; the jobs' configs, composed again from the
    overrides, are told the same path (relative stays relative: each node resolves it)."""
    path = claim_dir(Path(str(config.hydra.sweep.dir)))
    with read_write(config), open_dict(config):
        config.hydra.sweep.dir = str(path)
        if OmegaConf.select(config, "hydra.overrides.hydra") is None:
            OmegaConf.update(config, "hydra.overrides.hydra", [], force_add=True)
        config.hydra.overrides.hydra.append(f"hydra.sweep.dir={_quoted(path)}")


class SweepSummary(Callback):
    """Claims run and sweep folders; prints one ranked table when a multirun ends and writes
    summary.csv/html and the heatmap."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        claim_run_dir(config)

    # Hydra turns an exception raised by a callback into a warning and exits 0; a sweep whose
    # summary failed must not look like a success, so both hooks end in SystemExit instead.
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_sweeper(config)
            claim_sweep_dir(config)
        except ConfigError as e:
            raise SystemExit(f"hlquant: {e}") from None
        start_sweep(str(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from hlquant.config.build import redact_yaml_files

        redact_yaml_files([Path(str(config.hydra.sweep.dir)) / "multirun.yaml"])  # jobs may run elsewhere
        try:
            self._summarize(config)
        except Exception as e:
            if os.environ.get("HLQUANT_DEBUG") == "1":
                traceback.print_exc()
            raise SystemExit(f"hlquant: sweep summary failed: {type(e).__name__}: {e}") from None

    def _summarize(self, config: DictConfig) -> None:
        from hlquant.backtest.sweep_report import ranked_table, results_frame, write_sweep_report

        key = str(config.hydra.sweep.dir)
        sweep_dir = Path(key).resolve()
        objective, direction = str(config.sweep.objective), str(config.sweep.direction)
        results = take_results(key)
        expected = expected_jobs(config)
        nums = {r.num for r in results}
        if results:
            expected = max(expected or 0, max(nums) + 1)
        missing = sorted(set(range(expected or 0)) - nums)

        if results:
            df = results_frame(results)
            files = write_sweep_report(df, sweep_dir, objective, direction)
            print(f"\nSweep: {len(results)} jobs in {sweep_dir}, ranked by {objective} ({direction})")
            print(ranked_table(df, objective, direction))
            for name, path in files.items():
                print(f"  {name}: {path}")
            here = socket.gethostname()
            away = [r for r in results if r.node != here or not Path(r.output_dir).is_dir()]
            if away:
                print("  job files left on other machines:")
                for r in away:
                    print(f"    job {r.num}: {r.node}:{r.output_dir}")
            for r in results:
                if r.reconcile:
                    print(f"WARNING: job {r.num}: portfolio differs from venue: {r.reconcile}")
        if not results or missing:
            got = f"{len(results)} of {expected}" if expected else "no"
            raise SystemExit(
                f"hlquant: sweep incomplete: {got} jobs returned results"
                + (f" (missing jobs: {', '.join(map(str, missing))})" if missing else "")
                + f"; sweep directory {sweep_dir}")
