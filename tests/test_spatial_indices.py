"""Spatial indices: equal to pysal where the formula is the same, to a dense reference where we follow the
published formula instead, sparse at any size, and with permutation inference."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from conftest import shared_path
from spatial.dataset import validate
from spatial.errors import ValidationError
from spatial.indices import get, names
from spatial.indices.compute import compute_indices
from spatial.indices.spatial_context import SpatialContext
from spatial.indices.spatial_indices import multiscalar_profile
from spatial.io import load_dataset

sg = pytest.importorskip("segregation.singlegroup")
warnings.filterwarnings("ignore")
SAME_AS_PYSAL = [
    "spatial_dissimilarity",
    "boundary_spatial_dissimilarity",
    "delta",
    "absolute_centralization",
    "relative_centralization",
    "absolute_concentration",
    "relative_concentration",
]
PUBLISHED_DECAY = ["spatial_proximity", "relative_clustering", "distance_decay_isolation", "distance_decay_exposure"]


@pytest.fixture(scope="module")
def georgia(georgia_paths):
    return load_dataset(
        georgia_paths["boundaries"],
        counts=georgia_paths["counts"],
        key="area_key",
        groups=["black", "foreign_born"],
        total="total_population",
    )


def test_all_eleven_are_registered():
    assert set(names(spatial=True)) == set(SAME_AS_PYSAL + PUBLISHED_DECAY)


@pytest.mark.parametrize("group", ["black", "foreign_born"])
def test_equal_to_pysal_on_georgia(georgia, group):
    r = compute_indices(georgia, group=group, indices=SAME_AS_PYSAL)
    for name, res in r.items():
        ref = getattr(sg, get(name).pysal)(georgia.areas, group, "total_population").statistic
        assert res.value == pytest.approx(ref, abs=1e-9), name


def test_equal_to_pysal_on_chicago():
    gdf = gpd.read_file(shared_path("chicago", "Chicago_2020.geojson")).to_crs(26916)
    ds = load_dataset(gdf, key="GEOID", groups=["FOR_BORN"], total="TOT_POP")
    r = compute_indices(ds, group="FOR_BORN", indices=SAME_AS_PYSAL)
    for name, res in r.items():
        ref = getattr(sg, get(name).pysal)(ds.areas, "FOR_BORN", "TOT_POP").statistic
        assert res.value == pytest.approx(ref, abs=1e-9), name


def dense_reference(ds, group):
    """The published formulas with a dense proximity matrix (small data only)."""
    x, t = ds.counts(group)
    y = t - x
    ctx = SpatialContext(ds)
    xy = ctx.centroids / 1000
    d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    c = np.exp(-d)
    np.fill_diagonal(c, np.exp(-np.sqrt(0.6 * ctx.areas / 1e6)))
    X, Y, T = x.sum(), y.sum(), t.sum()
    Pxx, Pyy, Ptt = x @ c @ x / X**2, y @ c @ y / Y**2, t @ c @ t / T**2
    K = c * t[None, :] / (c @ t)[:, None]
    return {
        "spatial_proximity": (X * Pxx + Y * Pyy) / (T * Ptt),
        "relative_clustering": Pxx / Pyy - 1,
        "distance_decay_isolation": (x / X * (K @ (x / t))).sum(),
        "distance_decay_exposure": (x / X * (K @ (y / t))).sum(),
    }


def city(n=15, cell=400.0, seed=0):
    rng = np.random.default_rng(seed)
    cells = [(i, j) for i in range(n) for j in range(n)]
    t = rng.integers(100, 900, len(cells))
    x = rng.binomial(t, np.array([0.6 if i < n // 3 else 0.1 for i, _ in cells]))
    gdf = gpd.GeoDataFrame(
        {"id": [f"c{k}" for k in range(len(cells))], "t": t, "x": x},
        geometry=[box(i * cell, j * cell, (i + 1) * cell, (j + 1) * cell) for i, j in cells],
        crs="EPSG:32633",
    )
    return validate(gdf, id_col="id", groups=["x"], total="t")


def test_distance_decay_indices_follow_the_published_formula():
    ds = city()
    ref = dense_reference(ds, "x")
    r = compute_indices(ds, group="x", indices=PUBLISHED_DECAY)
    for name in PUBLISHED_DECAY:
        assert r[name].value == pytest.approx(ref[name], rel=1e-4), name  # truncation below exp(−d) = 1e-4
    assert r["relative_clustering"].value > 0  # the group is clustered in the west third


def test_no_dense_matrix_at_city_scale():
    ds = city(n=100, cell=100)  # 10,000 areas
    ctx = SpatialContext(ds)
    from spatial.indices.spatial_context import PAIR_BUDGET

    assert ctx.decay.nnz <= 2 * PAIR_BUDGET + ds.n and ctx.decay_cutoff_km < 9.3
    r = compute_indices(ds, group="x", indices=["spatial_dissimilarity", "spatial_proximity"])
    assert all(np.isfinite(v.value) for v in r.values())


def test_permutation_null_separates_pattern_from_chance():
    ds = city()
    clustered = compute_indices(ds, group="x", indices=["spatial_dissimilarity"], permutations=199, seed=2)[
        "spatial_dissimilarity"
    ]
    assert (
        clustered.null == "permutation"
        and clustered.p_value < 0.05
        # The interval is of the bias-corrected value (noise smooths a pattern: the observed D is low).
        and clustered.ci_low <= clustered.value_bias_corrected <= clustered.ci_high
    )
    shuffled = city()
    order = np.random.default_rng(5).permutation(shuffled.n)
    shuffled.areas[["t", "x"]] = shuffled.areas[["t", "x"]].to_numpy()[order]
    calm = compute_indices(shuffled, group="x", indices=["spatial_dissimilarity"], permutations=199, seed=2)[
        "spatial_dissimilarity"
    ]
    assert calm.p_value > 0.01


def test_multiscalar_profile_falls_with_scale():
    ds = city(n=20, cell=300)
    profile = multiscalar_profile(ds, "dissimilarity", "x", distances=(500, 1000, 2000, 4000))
    values = list(profile.values())
    assert list(profile) == [0.0, 500.0, 1000.0, 2000.0, 4000.0]
    assert values[0] > values[-1] and values[-1] > 0  # a large cluster survives smoothing, noise does not


def test_multiscalar_profile_equals_a_dense_hand_computation():
    """Each area's counts summed over every area whose centroid is within d (itself included), then D by hand."""
    ds = city(n=12, cell=350, seed=3)
    x, t = (ds.areas[c].to_numpy(float) for c in ("x", "t"))
    xy = np.column_stack([ds.metric.centroid.x, ds.metric.centroid.y])
    dist = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    profile = multiscalar_profile(ds, "dissimilarity", "x", distances=(700, 1500))
    for d in (700, 1500):
        near = (dist <= d).astype(float)
        xs, ts = near @ x, near @ t
        ys = ts - xs
        expected = 0.5 * np.abs(xs / xs.sum() - ys / ys.sum()).sum()
        assert profile[float(d)] == pytest.approx(expected, rel=1e-12)


def test_multiscalar_profile_refuses_a_distance_that_pairs_everyone():
    import spatial.indices.spatial_indices as si

    ds = city(n=12, cell=350)
    budget, si.MULTISCALAR_PAIR_BUDGET = si.MULTISCALAR_PAIR_BUDGET, 1000
    try:
        with pytest.raises(ValidationError, match="smaller distances"):
            multiscalar_profile(ds, "dissimilarity", "x", distances=(5000,))
    finally:
        si.MULTISCALAR_PAIR_BUDGET = budget
    with pytest.raises(ValidationError, match="positive"):
        multiscalar_profile(ds, "dissimilarity", "x", distances=(0,))


def test_sacramento_reference_values_projected():
    """pysal's references were computed on EPSG:4326 (areas in degrees²); segmap always measures in metres.
    Topological indices must match exactly; area/distance ones only as closely as the CRS change allows —
    and exactly when pysal is given the same projected tracts."""
    import json

    ref = json.loads(shared_path("sacramento", "reference_values.json").read_text())["single_group_HISP_vs_TOT_POP"]
    gdf = gpd.read_file(shared_path("sacramento", "sacramento1.geojson"))
    gdf = gdf.rename(columns=lambda c: c.rstrip("_") if c != "geometry" else c).to_crs(26910)
    gdf["tract"] = [f"t{i}" for i in range(len(gdf))]
    ds = load_dataset(gdf, key="tract", groups=["HISP"], total="TOT_POP")
    r = compute_indices(ds, group="HISP", indices=SAME_AS_PYSAL)
    assert r["spatial_dissimilarity"].value == pytest.approx(ref["SpatialDissim(queen)"], abs=1e-9)
    for ours, theirs in (
        ("boundary_spatial_dissimilarity", "BoundarySpatialDissim"),
        ("delta", "Delta"),
        ("absolute_centralization", "AbsoluteCentralization"),
        ("relative_centralization", "RelativeCentralization"),
        ("absolute_concentration", "AbsoluteConcentration"),
        ("relative_concentration", "RelativeConcentration"),
    ):
        assert r[ours].value == pytest.approx(ref[theirs], abs=0.01), ours
        assert r[ours].value == pytest.approx(
            getattr(sg, get(ours).pysal)(ds.areas, "HISP", "TOT_POP").statistic, abs=1e-9
        ), ours
