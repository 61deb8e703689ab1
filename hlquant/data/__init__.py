"""Market data: columnar history (``MarketData``), the seeded generator, loaders.

    from hlquant.data import load
    md = load("sample")            # bundled BTC/ETH/SOL week
    md = load("path/to/my_data")   # users' files, see docs/data.md

The generator lives in ``hlquant.data.generate`` (``from hlquant.data.generate
import generate``); it is not imported here so that ``python -m
hlquant.data.generate`` runs cleanly and loading data does not load numba.
"""

from hlquant.data.loaders import load, load_files, load_sample, write_files
from hlquant.data.market import STREAMS, MarketData
from hlquant.data.schema import SCHEMAS
from hlquant.data.series import SignalSeries, read_signal_file

__all__ = [
    "SCHEMAS",
    "STREAMS",
    "MarketData",
    "SignalSeries",
    "read_signal_file",
    "load",
    "load_files",
    "load_sample",
    "write_files",
]
