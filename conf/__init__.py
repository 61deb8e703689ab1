"""The bundled Hydra config tree (``pkg://hlquant.conf``): shipped inside the package so an
installed hlquant runs from any folder; a user's folder (``--config-dir`` or
``$HLQUANT_CONF``) is layered on top of it (``hlquant.config.compose``)."""
