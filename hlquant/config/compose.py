"""Compose the Hydra config tree from Python (notebooks, tests, the pre-flight check).

The CLI and ``load_config`` read the same tree with the same overrides, so a
notebook run and ``hlquant backtest ...`` see identical settings.

The tree is ``conf/`` at the project's root; ``hlquant/conf`` is a link to it, so it
ships inside the package (Hydra's ``pkg://hlquant.conf``; a wheel holds the files
themselves) and an installed hlquant runs from any folder. A
user's own config folder (``--config-dir DIR`` anywhere on the command line,
or ``$HLQUANT_CONF``) is layered on top: its files are found first (a
``strategy/mine.yaml`` adds ``strategy=mine``; a file with the name of a
bundled one replaces it; its own ``config.yaml`` becomes the primary config)
and everything else comes from the bundled tree. The layering is a Hydra
search-path plugin (``hydra_plugins/hlquant_searchpath``) reading
``$HLQUANT_CONF``, so ``hydra.main`` and the compose API see the same tree.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from hlquant.core.errors import ConfigError

PKG_CONF = "pkg://hlquant.conf"
USER_CONF_ENV = "HLQUANT_CONF"


def conf_dir() -> str:
    """The bundled config tree on disk (``hlquant/conf``)."""
    return str(Path(__file__).resolve().parents[1] / "conf")


def user_conf_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The user's config folder: ``explicit`` (``--config-dir``), else ``$HLQUANT_CONF``."""
    d = explicit if explicit is not None else os.environ.get(USER_CONF_ENV)
    if not d:
        return None
    p = Path(d).expanduser().resolve()
    if not p.is_dir():
        raise ConfigError(f"config folder {str(d)!r} not found ({p})")
    return p


def expand_home(overrides: Sequence[str]) -> list[str]:
    """``key=~/x`` -> ``key=/home/me/x``: the shell leaves ``~`` after ``=`` alone and Hydra's
    override grammar refuses it, so a path a person types as ``data.path=~/my_data`` works."""
    out = []
    for o in overrides:
        key, eq, value = o.partition("=")
        if eq and value.startswith("~") and not key.startswith("~"):
            path = os.path.expanduser(value)
            safe = all(c.isalnum() or c in "/_-.:+@" for c in path)
            o = f"{key}={path}" if safe else f"{key}='" + path.replace("\\", "\\\\").replace("'", "\\'") + "'"
        out.append(o)
    return out


def split_config_dir(argv: Sequence[str]) -> tuple[list[str], str | None]:
    """``--config-dir DIR`` / ``--config-dir=DIR`` / ``-cd DIR`` taken out of ``argv``
    wherever it stands (before or after the subcommand)."""
    out: list[str] = []
    found: str | None = None
    it = iter(range(len(argv)))
    for i in it:
        a = argv[i]
        if a in ("--config-dir", "-cd"):
            if i + 1 >= len(argv):
                raise ConfigError(f"{a} needs a folder")
            found = argv[i + 1]
            next(it, None)
        elif a.startswith("--config-dir="):
            found = a.split("=", 1)[1]
        else:
            out.append(a)
    return out, found


def load_config(overrides: Sequence[str] = (), config_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The resolved config as a plain dict (``hydra`` section dropped), e.g.
    ``load_config(["strategy=ma_cross", "risk.max_leverage=2"])``; ``config_dir``: a
    user config folder layered over the bundled tree (default ``$HLQUANT_CONF``)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from hlquant.config.schema import register_schemas

    register_schemas()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    user = user_conf_dir(config_dir)
    saved = os.environ.get(USER_CONF_ENV)
    if user is not None:
        os.environ[USER_CONF_ENV] = str(user)
    try:
        with initialize_config_module(config_module="hlquant.conf", version_base="1.3"):
            cfg = compose(config_name="config", overrides=expand_home(overrides))
    finally:
        if user is not None and saved is None:
            os.environ.pop(USER_CONF_ENV, None)
        elif saved is not None:
            os.environ[USER_CONF_ENV] = saved
    c = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(c, dict)
    c.pop("hydra", None)
    return c
