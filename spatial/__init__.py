"""segmap's analysis library: validated areas + counts, weights, indices, local statistics, inference.

Pure computation: nothing here imports the HTTP service (``app``) or the map views (``maps``).
"""

from .dataset import AreaDataset, Metadata, validate
from .errors import Problem, SegmapError, ValidationError
from .io import load_dataset, read_boundaries, read_counts
from .results import IndexResult, LocalResult

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
