"""Hydra search-path plugin: a user's config folder layered over hlquant's bundled tree.

hlquant's primary config is ``pkg://hlquant.conf`` (the tree inside the package).
When ``$HLQUANT_CONF`` names a folder (the ``hlquant`` command sets it from
``--config-dir``), that folder is searched before the bundled tree: its
``strategy/mine.yaml`` adds ``strategy=mine``, a file with the name of a bundled
one replaces it, its ``config.yaml`` becomes the primary config. Other Hydra
applications are left alone (the plugin acts only where ``pkg://hlquant.conf``
is on the search path).
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.plugins.search_path_plugin import SearchPathPlugin

PKG_CONF = "pkg://hlquant.conf"


class HlquantUserConfig(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        user = os.environ.get("HLQUANT_CONF")
        if not user or not any(e.path == PKG_CONF for e in search_path.get_path()):
            return
        folder = Path(user).expanduser().resolve()
        search_path.prepend(provider="hlquant user config", path=f"file://{folder}",
                            anchor=SearchPathQuery(path=PKG_CONF))
