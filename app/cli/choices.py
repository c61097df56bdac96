"""What the parsers offer, as plain constants: `segmap --help` must not import the library (geopandas, scipy,
libpysal, numba: ~3 s) to list them. tests/test_cli_lazy.py checks each against the library it mirrors."""

from __future__ import annotations

ID = "id"  # spatial.dataset.ID
MAX_ZOOM = 22  # app.tiles.MAX_ZOOM
MAX_AUTO_PERMUTATIONS = 99_999  # spatial.local.MAX_AUTO_PERMUTATIONS
KINDS = ("queen", "rook", "knn", "distance", "kernel")  # spatial.weights.KINDS
CORRECTIONS = ("fdr", "bonferroni", "none")  # spatial.multiple_testing.CORRECTIONS
GLOBAL_TESTS = ("randomisation", "permutation")  # spatial.local.GLOBAL_TESTS
LOCAL_STATISTICS = ("lisa", "gi_star", "lq", "entropy", "bivariate_lisa")  # spatial.local.STATISTICS
LOCAL_ALIASES = ("moran", "local_moran", "getis_ord", "location_quotient", "bivariate_moran")  # spatial.local.ALIASES
HARMONIZE_METHODS = ("area", "population")  # spatial.change.harmonize.METHODS
MATCH_TOLERANCE = 1e-6  # spatial.change.harmonize.MATCH_TOLERANCE
INDICES = (  # spatial.indices.names(), in its order
    "dissimilarity",
    "gini",
    "entropy",
    "atkinson",
    "isolation",
    "exposure",
    "correlation_ratio",
    "multigroup_dissimilarity",
    "multigroup_gini",
    "information_theory",
    "normalized_exposure",
    "relative_diversity",
    "simpsons_interaction",
    "simpsons_concentration",
    "squared_coefficient_of_variation",
    "mutual_information",
    "spatial_dissimilarity",
    "boundary_spatial_dissimilarity",
    "delta",
    "absolute_centralization",
    "relative_centralization",
    "absolute_concentration",
    "relative_concentration",
    "spatial_proximity",
    "relative_clustering",
    "distance_decay_isolation",
    "distance_decay_exposure",
)
