"""Change over time: carry counts across boundary reforms, decompose a change in segregation, map local change.

* :mod:`.harmonize` — counts from one geography onto another (area-weighted or dasymetric through a finer
  layer or a population raster, :func:`.layers.raster_cells`), integers conserved;
* :mod:`.decompose` — Shapley decomposition of a change in M or H (Elbers 2021) and the spatial/attribute
  decomposition of a difference in D (Rey, Cortes & Knaap 2021);
* :mod:`.local_change` — per-area change in share and location quotient with a test, LISA cluster transitions.
"""

from .decompose import decompose_dissimilarity, shapley_decomposition
from .harmonize import Harmonized, harmonize
from .layers import raster_cells
from .local_change import lisa_transitions, local_change

__all__ = [
    "Harmonized",
    "decompose_dissimilarity",
    "harmonize",
    "lisa_transitions",
    "local_change",
    "raster_cells",
    "shapley_decomposition",
]
