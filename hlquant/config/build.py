"""Build components from the Hydra config tree (conf/).

Config groups map one-to-one onto components: ``data`` -> a MarketData
source, ``strategy`` -> agents, ``venue`` -> SimVenueConfig, ``risk`` ->
RiskConfig, ``router`` -> RouterConfig, ``features.staleness`` -> staleness
rules. Unknown keys are errors (a typo in an override must not be ignored),
and a strategy parameter whose type differs from its default in the agent
class (``strategy.fast=abc`` where the default is 10) is an error naming the
key, raised here rather than deep inside a feature kernel.

A strategy class is found by ``cls``: ``package.module:Class`` (importable),
``path/to/file.py:Class`` (any folder; relative to the working directory), or
``module:Class`` with the module in a folder of ``strategy_path``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hlquant.agents.base import Agent, AgentConfig
from hlquant.core.errors import ConfigError
from hlquant.core.secrets import redact


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


def load_file(path: str | Path) -> Any:
    """The module of a Python file (loaded once per path; its folder joins ``sys.path`` so
    it can import its neighbours)."""
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = Path.cwd() / p
    p = p.resolve()
    if not p.is_file():
        raise ConfigError(f"strategy file {path!r} not found (looked at {p}; relative paths are "
                          f"relative to the folder hlquant runs in, {Path.cwd()})")
    name = f"hlquant_user_{p.stem}_{hashlib.sha1(str(p).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    if str(p.parent) not in sys.path:
        sys.path.append(str(p.parent))
    spec = importlib.util.spec_from_file_location(name, p)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        sys.modules.pop(name, None)
        raise
    return module


def import_object(path: str, search_path: Sequence[str] = ()) -> Any:
    """``package.module:Name``, ``path/to/file.py:Name``, or ``module:Name`` with the module
    in one of the ``search_path`` folders -> the object."""
    mod, _, name = str(path).rpartition(":")
    if not mod or not name:
        raise ConfigError(f"expected 'module:Class' or 'path/to/file.py:Class', got {path!r}")
    if mod.endswith(".py") or "/" in mod or os.sep in mod:
        module = load_file(mod)
    else:
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name is None or not mod.startswith(e.name):
                raise ConfigError(f"cannot import {path!r}: {e}") from e  # a dependency inside it
            module = _from_search_path(mod, search_path)
            if module is None:
                where = ", ".join(str(Path(d).expanduser()) for d in search_path) or "none configured"
                raise ConfigError(f"cannot import {path!r}: no module {mod!r} on the Python path or in "
                                  f"strategy_path ({where})") from None
        except ImportError as e:
            raise ConfigError(f"cannot import {path!r}: {e}") from e
    try:
        return getattr(module, name)
    except AttributeError:
        defined = sorted(k for k, v in vars(module).items() if isinstance(v, type) and not k.startswith("_"))
        raise ConfigError(f"{path!r}: module {mod!r} has no {name!r}; it defines {defined}") from None


def _from_search_path(mod: str, search_path: Sequence[str]) -> Any:
    head = mod.split(".")[0]
    for d in search_path:
        folder = Path(d).expanduser().resolve()
        if (folder / f"{head}.py").is_file() or (folder / head / "__init__.py").is_file():
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
            return importlib.import_module(mod)
    return None


def _type_name(v: Any) -> str:
    return {bool: "a bool", int: "an int", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(v), type(v).__name__)


def conform(default: Any, value: Any) -> tuple[bool, Any]:
    """Whether ``value`` has the type of ``default`` (an int is a float, a whole float an
    int), and the value in that type."""
    if default is None or value is None:
        return True, value
    if isinstance(default, bool):
        return isinstance(value, bool), value
    if isinstance(default, int):
        if isinstance(value, bool):
            return False, value
        if isinstance(value, int):
            return True, value
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return False, value
    if isinstance(default, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if isinstance(default, list | tuple):
        return isinstance(value, list | tuple), value
    if isinstance(default, Mapping):
        return isinstance(value, Mapping), value
    return isinstance(value, type(default)), value


def check_params(cls: type, params: Mapping[str, Any], where: str,
                 strategy: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``params`` checked against the types of ``cls.defaults``; the error names the key (and
    the ``strategy.<key>`` it was set by, when a strategy-level key of the same name holds it)."""
    out = dict(params)
    defaults = getattr(cls, "defaults", {}) or {}
    for k, v in params.items():
        if k not in defaults:
            continue
        ok, typed = conform(defaults[k], v)
        if ok:
            out[k] = typed
            continue
        top = dict(strategy or {})
        inner = f"{where}.params.{k}"
        key = f"strategy.{k}" if k in top and top[k] == v else inner
        also = f" ({inner})" if key != inner else ""
        raise ConfigError(f"{key}={v!r}{also}: expected {_type_name(defaults[k])} like the default "
                          f"{defaults[k]!r} of {cls.__name__}, got {_type_name(v)}")
    return out


def build_agents(strategy: Mapping[str, Any], search_path: Sequence[str] = ()) -> list[Agent]:
    """Agents of a strategy config: ``agents: [{cls, name?, symbols, params, ...}]``;
    ``search_path``: folders where a ``cls`` module is also looked for (``strategy_path``)."""
    strategy = to_dict(strategy)
    specs = strategy.get("agents")
    if not specs:
        raise ConfigError(f"strategy {strategy.get('name')!r} has no agents")
    agents = []
    for i, spec in enumerate(specs):
        spec = dict(spec)
        where = f"strategy.agents[{i}]"
        if not spec.get("cls"):
            raise ConfigError(f"{where}.cls is missing: name the agent class, e.g. strategies.ma_cross:MACross")
        cls = import_object(spec.pop("cls"), search_path)
        if not (isinstance(cls, type) and issubclass(cls, Agent)):
            raise ConfigError(f"{where}.cls is not an hlquant Agent subclass")
        spec.setdefault("name", f"{strategy.get('name', 'agent')}-{i}")
        spec["symbols"] = tuple(spec.get("symbols") or ())
        spec["params"] = check_params(cls, spec.get("params") or {}, where, strategy)
        cfg = make_dataclass(AgentConfig, spec, where, drop=())
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
        market = load_files(Path(str(data["path"])).expanduser(), irregular=irregular)
    elif source in ("postgres", "timescale"):
        from hlquant.storage.postgres import load_market_from_config

        market = load_market_from_config(data)
    elif source == "generated":
        from hlquant.data.generate import generate

        unknown = sorted(set(data) - {"source", "n_symbols", "days", "seed", "trades", "l2", "symbols",
                                       "start", "end"})
        if unknown:
            raise ConfigError(f"data (generated): unknown key(s) {unknown}")
        market = generate(n_symbols=int(data.get("n_symbols", 50)), days=float(data.get("days", 2)),
                          seed=int(data.get("seed", 7)), with_trades=bool(data.get("trades", False)),
                          with_l2=bool(data.get("l2", False)))
    else:
        raise ConfigError(f"unknown data.source {source!r} (sample, files, postgres, generated)")
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
