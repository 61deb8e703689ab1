"""The config tree's typed groups come from the components' own config classes.

``risk/default``, ``router/default``, ``venue/sim`` and ``live/default`` are
registered in Hydra's ConfigStore from ``RiskConfig``, ``RouterConfig``,
``SimVenueConfig`` and ``LiveConfig``: each default lives in its class (with
its docstring), an override of the wrong type or of a key that does not
exist fails when the config is composed, naming the key.
"""

from __future__ import annotations

from omegaconf import OmegaConf

from hlquant.config.live import LiveConfig
from hlquant.risk.engine import RiskConfig
from hlquant.router.router import RouterConfig
from hlquant.venues.sim import SimVenueConfig

SCHEMAS = {("risk", "default"): RiskConfig, ("router", "default"): RouterConfig,
           ("venue", "sim"): SimVenueConfig, ("live", "default"): LiveConfig}


def register_schemas() -> None:
    """Put the typed groups in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for (group, name), cls in SCHEMAS.items():
        node = OmegaConf.structured(cls)
        OmegaConf.set_readonly(node, False)  # frozen classes; overrides must still apply
        cs.store(group=group, name=name, node=node)
