"""segmap's analysis library: validated areas + counts, weights, indices, local statistics, inference.

Pure computation: nothing here imports the HTTP service (``app``) or the map views (``maps``).
"""

from __future__ import annotations

import importlib

# Read on first use (PEP 562): `from spatial.errors import …` must not pay geopandas (~3 s), or `segmap --help` does.
_FROM = {
    "AreaDataset": "dataset",
    "Metadata": "dataset",
    "validate": "dataset",
    "Problem": "errors",
    "SegmapError": "errors",
    "ValidationError": "errors",
    "load_dataset": "io",
    "read_boundaries": "io",
    "read_counts": "io",
    "IndexResult": "results",
    "LocalResult": "results",
}

__all__ = [
    "AreaDataset",
    "Metadata",
    "validate",
    "load_dataset",
    "read_boundaries",
    "read_counts",
    "IndexResult",
    "LocalResult",
    "Problem",
    "SegmapError",
    "ValidationError",
]


def __getattr__(name: str):
    if name in _FROM:
        return getattr(importlib.import_module(f".{_FROM[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
