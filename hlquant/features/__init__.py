"""Features: numba kernels (``nb``) usable incrementally and over arrays,
their Python API (``kernels``), stream processors (``pipeline``) and the
FeatureStore with staleness rules (``store``)."""

from hlquant.features.kernels import KINDS, Feature, FeatureSpec, build_feature, parse_specs
from hlquant.features.pipeline import Bars, FeatureColumn, FeatureProcessor, compute_columnar
from hlquant.features.store import FeatureStore, InMemoryFeatureStore, StalenessRules

__all__ = [
    "Bars",
    "KINDS",
    "Feature",
    "FeatureSpec",
    "build_feature",
    "parse_specs",
    "FeatureColumn",
    "FeatureProcessor",
    "compute_columnar",
    "FeatureStore",
    "InMemoryFeatureStore",
    "StalenessRules",
]
