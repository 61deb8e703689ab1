"""Build components from the Hydra config tree (conf/).

Config groups map one-to-one onto components: ``data`` -> a MarketData
source, ``strategy`` -> agents, ``venue`` -> SimVenueConfig, ``risk`` ->
RiskConfig, ``router`` -> RouterConfig, ``features.staleness`` -> staleness
rules. Unknown keys are errors (a typo in an override must not be ignored).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hlquant.agents.base import Agent, AgentConfig
from hlquant.audit.log import redact
from hlquant.core.errors import ConfigError


def to_dict(cfg: Any) -> dict:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg or {})


def make_dataclass(cls: type, values: Mapping[str, Any], where: str, drop: tuple[str, ...] = ("name",)) -> Any:
    """Instantiate a frozen config dataclass, naming the bad key on error."""
    fields = {f.name for f in dataclasses.fields(cls)}
    vals = {k: v for k, v in dict(values).items() if k not in drop or k in fields}
    unknown = sorted(set(vals) - fields)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid: {sorted(fields)}")
    try:
        return cls(**vals)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from e


def import_object(path: str) -> Any:
    """``package.module:Name`` -> the object."""
    mod, _, name = path.partition(":")
    if not name:
        raise ConfigError(f"expected 'module:Class', got {path!r}")
    try:
        return getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot import {path!r}: {e}") from e


def build_agents(strategy: Mapping[str, Any]) -> list[Agent]:
    """Agents of a strategy config: ``agents: [{cls, name?, symbols, params, ...}]``."""
    strategy = to_dict(strategy)
    specs = strategy.get("agents")
    if not specs:
        raise ConfigError(f"strategy {strategy.get('name')!r} has no agents")
    agents = []
    for i, spec in enumerate(specs):
        spec = dict(spec)
        cls = import_object(spec.pop("cls"))
        if not (isinstance(cls, type) and issubclass(cls, Agent)):
            raise ConfigError(f"strategy.agents[{i}].cls is not an hlquant Agent subclass")
        spec.setdefault("name", f"{strategy.get('name', 'agent')}-{i}")
        spec["symbols"] = tuple(spec.get("symbols") or ())
        cfg = make_dataclass(AgentConfig, spec, f"strategy.agents[{i}]", drop=())
        agents.append(cls(cfg))
    return agents


def load_market(data: Mapping[str, Any]) -> Any:
    """MarketData for a ``data`` config: ``source: sample | files | postgres``."""
    data = to_dict(data)
    source = data.get("source", "sample")
    if source == "sample":
        from hlquant.data.loaders import load_sample

        market = load_sample()
    elif source == "files":
        from hlquant.data.loaders import load_files

        if not data.get("path"):
            raise ConfigError("data=files needs data.path=/dir/with/candles.parquet")
        irregular = data.get("irregular") or "reject"
        if irregular not in ("reject", "accept"):
            raise ConfigError(f"data.irregular must be reject or accept, got {irregular!r}")
        market = load_files(Path(data["path"]).expanduser(), irregular=irregular)
    elif source in ("postgres", "timescale"):
        from hlquant.storage.postgres import load_market_from_config

        market = load_market_from_config(data)
    else:
        raise ConfigError(f"unknown data.source {source!r} (sample, files, postgres)")
    symbols = data.get("symbols")
    if symbols or data.get("start") or data.get("end"):
        market = market.select(symbols=symbols or None, start=data.get("start"), end=data.get("end"))
        if not len(market):
            from hlquant.core.errors import DataError

            raise DataError(f"data.start={data.get('start')!r} / data.end={data.get('end')!r} select no "
                            f"events of {list(market.symbols)}: nothing to run on")
    return market


def redacted_yaml(cfg: Any) -> str:
    """Config dump safe to print or store: secrets replaced by '***'."""
    return OmegaConf.to_yaml(OmegaConf.create(redact(to_dict(cfg))))


def redact_yaml_files(paths: Iterable[str | Path]) -> list[Path]:
    """Rewrite YAML dumps (Hydra's ``.hydra/*.yaml``, ``multirun.yaml``) with secrets replaced
    by '***', interpolations left as written; returns the files that changed. Hydra writes
    them before any hlquant code runs, so each task calls this first."""
    changed = []
    for p in map(Path, paths):
        if not p.is_file():
            continue
        raw = OmegaConf.to_container(OmegaConf.load(p), resolve=False)
        clean = redact(raw)
        if clean == raw:
            continue
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")  # concurrent sweep jobs rewrite multirun.yaml
        tmp.write_text(OmegaConf.to_yaml(OmegaConf.create(clean)), encoding="utf-8")
        os.replace(tmp, p)
        changed.append(p)
    return changed
