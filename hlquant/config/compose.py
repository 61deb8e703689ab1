"""Compose the Hydra config tree from Python (notebooks, tests, the pre-flight check).

The CLI and ``load_config`` read the same ``conf/`` with the same overrides,
so a notebook run and ``hlquant backtest ...`` see identical settings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from hlquant.core.errors import ConfigError


def conf_dir() -> str:
    """The config tree: ``$HLQUANT_CONF``, else ``conf/`` beside the package."""
    env = os.environ.get("HLQUANT_CONF")
    if env:
        return str(Path(env).expanduser().resolve())
    here = Path(__file__).resolve().parents[2] / "conf"
    if not here.is_dir():
        raise ConfigError(f"config directory not found at {here}; set HLQUANT_CONF")
    return str(here)


def load_config(overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The resolved config as a plain dict (``hydra`` section dropped), e.g.
    ``load_config(["strategy=ma_cross", "risk.max_leverage=2"])``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from hlquant.config.schema import register_schemas

    register_schemas()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    c = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(c, dict)
    c.pop("hydra", None)
    return c
