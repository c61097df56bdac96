"""City-wide indices: hand-computed cases, identities, pysal `segregation` on real data, properties, inference."""

from __future__ import annotations

import json
import warnings

import geopandas as gpd
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from conftest import shared_path
from spatial.dataset import validate
from spatial.errors import ValidationError
from spatial.indices import get, names
from spatial.indices.compute import compute_indices
from spatial.io import load_dataset

seg_single = pytest.importorskip("segregation.singlegroup")
seg_multi = pytest.importorskip("segregation.multigroup")
warnings.filterwarnings("ignore")

TWO_GROUP = names(kind="two_group", spatial=False)
MULTI = names(kind="multigroup", spatial=False)


def city(groups: dict[str, list[float]], total: str | None = None):
    """A row of unit squares carrying the given count columns."""
    n = len(next(iter(groups.values())))
    gdf = gpd.GeoDataFrame(
        {"id": [f"a{i}" for i in range(n)], **groups}, geometry=[box(i, 0, i + 1, 1) for i in range(n)], crs="EPSG:3857"
    )
    return validate(gdf, id_col="id", groups=[g for g in groups if g != total], total=total)


def value(ds, index, **kw):
    return compute_indices(ds, indices=[index], **kw)[index].value


# --- hand-computed cases -------------------------------------------------------------------------------


def test_dissimilarity_hand_computed():
    ds = city({"a": [100, 60, 40, 0], "b": [0, 40, 60, 100]})
    # ½ (|1/2 − 0| + |.3 − .2| + |.2 − .3| + |0 − 1/2|) = 0.6
    assert value(ds, "dissimilarity", group="a", groups=["a", "b"]) == pytest.approx(0.6, abs=1e-12)


@pytest.mark.parametrize(
    "index",
    [
        "dissimilarity",
        "gini",
        "entropy",
        "atkinson",
        "correlation_ratio",
        "multigroup_dissimilarity",
        "multigroup_gini",
        "information_theory",
        "relative_diversity",
        "normalized_exposure",
        "mutual_information",
    ],
)
def test_even_and_separated_extremes(index):
    even = city({"a": [10, 20, 30], "b": [30, 60, 90]})
    apart = city({"a": [10, 0, 30], "b": [0, 60, 0]})
    assert value(even, index, group="a", groups=["a", "b"]) == pytest.approx(0, abs=1e-12)
    if index != "mutual_information":  # M's maximum is the city's entropy, not 1
        assert value(apart, index, group="a", groups=["a", "b"]) == pytest.approx(1, abs=1e-12)


def test_isolation_plus_exposure_is_one():
    ds = city({"a": [5, 17, 0, 40], "b": [20, 3, 9, 1]})
    r = compute_indices(ds, group="a", groups=["a", "b"], indices=["isolation", "exposure"])
    assert r["isolation"].value + r["exposure"].value == pytest.approx(1, abs=1e-12)


def test_gini_matches_pairwise_definition():
    rng = np.random.default_rng(4)
    t = rng.integers(0, 500, 60).astype(float)
    x = np.floor(t * rng.random(60))
    p = np.divide(x, t, out=np.zeros_like(x), where=t > 0)
    P = x.sum() / t.sum()
    pairwise = (np.outer(t, t) * np.abs(p[:, None] - p[None, :])).sum() / (2 * t.sum() ** 2 * P * (1 - P))
    ds = city({"x": list(x), "t": list(t)}, total="t")
    assert value(ds, "gini", group="x") == pytest.approx(pairwise, rel=1e-12)


def test_mutual_information_decomposes_exactly():
    rng = np.random.default_rng(2)
    X = rng.integers(0, 200, size=(40, 3)).astype(float)
    ds = city({"g1": list(X[:, 0]), "g2": list(X[:, 1]), "g3": list(X[:, 2])})
    ds.areas["district"] = np.repeat(["n", "s", "e", "w"], 10)
    r = compute_indices(ds, groups=["g1", "g2", "g3"], indices=["mutual_information"], region="district")
    dec = r["mutual_information"].extra["decomposition"]
    assert dec["between"] + dec["within"] == pytest.approx(r["mutual_information"].value, rel=1e-12)
    assert set(dec["regions"]) == {"n", "s", "e", "w"}


def test_zero_population_areas_give_finite_values():
    ds = city({"a": [0, 10, 0, 5], "b": [0, 3, 0, 30]})
    r = compute_indices(ds, group="a", groups=["a", "b"])
    assert all(np.isfinite(res.value) for res in r.values())


def test_degenerate_and_unknown_inputs_are_clear_errors():
    ds = city({"a": [0, 0, 0], "b": [4, 5, 6]})
    with pytest.raises(ValidationError, match="has no members"):
        compute_indices(ds, group="a", indices=["dissimilarity"])
    with pytest.raises(ValidationError, match="Unknown index"):
        compute_indices(ds, group="b", indices=["segregationness"])
    over = city({"a": [3, 4], "b": [3, 4], "t": [5, 5]}, total="t")
    with pytest.raises(ValidationError, match="add up to more than"):
        compute_indices(over, groups=["a", "b"], total="t", indices=["multigroup_dissimilarity"])


# --- pysal `segregation` on real data -----------------------------------------------------------------


def _check_against_pysal(ds, group, total, groups):
    df = ds.areas
    r = compute_indices(ds, group=group, groups=groups, total=total, indices=TWO_GROUP)
    for name, res in r.items():
        ref = getattr(seg_single, get(name).pysal)(df, group, total).statistic
        assert res.value == pytest.approx(ref, abs=1e-6), name
    r = compute_indices(ds, groups=groups, indices=[m for m in MULTI if get(m).pysal])
    for name, res in r.items():
        ref = getattr(seg_multi, get(name).pysal)(df, groups).statistic
        assert res.value == pytest.approx(ref, abs=1e-6), name


def test_georgia_matches_pysal(georgia_paths):
    ds = load_dataset(
        georgia_paths["boundaries"],
        counts=georgia_paths["counts"],
        key="area_key",
        groups=["foreign_born", "black", "native_born", "not_black"],
        total="total_population",
    )
    _check_against_pysal(ds, "foreign_born", "total_population", ["foreign_born", "native_born"])
    _check_against_pysal(ds, "black", "total_population", ["black", "not_black"])


def test_chicago_matches_pysal():
    path = shared_path("chicago", "Chicago_2020.geojson")
    ds = load_dataset(
        path, key="GEOID", groups=["FOR_BORN", "WHITE", "HISP", "BLACK", "ASIAN", "OTHER"], total="TOT_POP"
    )
    _check_against_pysal(ds, "FOR_BORN", "TOT_POP", ["WHITE", "HISP", "BLACK", "ASIAN", "OTHER"])


def test_berlin_matches_pysal():
    shapes = shared_path("berlin", "berlin-lor-planning-areas-until-2020.geojson")
    table = shared_path("berlin", "berlin-lor-population-2020-02-t1-planning-areas.csv")
    gdf = gpd.read_file(shapes)
    gdf = gdf[~gdf["id"].duplicated(keep=False)]  # the file repeats one id (see data README)
    ds = load_dataset(
        gdf,
        counts=table,
        key="id",
        drop_unmatched=True,
        total="inhabitants",
        groups=[
            "inhabitants_with_migration_background",
            "inhabitants_foreigners",
            "inhabitants_germans_without_migration_background",
        ],
    )
    _check_against_pysal(
        ds,
        "inhabitants_foreigners",
        "inhabitants",
        ["inhabitants_with_migration_background", "inhabitants_germans_without_migration_background"],
    )


def test_sacramento_reference_values():
    path = shared_path("sacramento", "sacramento1.geojson")
    ref = json.loads(shared_path("sacramento", "reference_values.json").read_text())
    gdf = gpd.read_file(path).rename(columns=lambda c: c.rstrip("_") if c.endswith("_") and c != "geometry" else c)
    gdf["tract"] = [f"t{i}" for i in range(len(gdf))]
    groups = ["WHITE", "BLACK", "ASIAN", "HISP"]
    ds = load_dataset(gdf, key="tract", groups=groups + ["TOT_POP"], total="TOT_POP")
    single = ref["single_group_HISP_vs_TOT_POP"]
    expected = {
        "dissimilarity": "Dissim",
        "isolation": "Isolation",
        "exposure": "Interaction",
        "entropy": "Entropy",
        "gini": "Gini",
        "atkinson": "Atkinson(b=0.5)",
        "correlation_ratio": "CorrelationR",
    }
    r = compute_indices(ds, group="HISP", total="TOT_POP", indices=list(expected))
    for ours, theirs in expected.items():
        assert r[ours].value == pytest.approx(single[theirs], abs=1e-6), ours
    multi = ref["multi_group_WHITE_BLACK_ASIAN_HISP"]
    expected = {
        "multigroup_dissimilarity": "MultiDissim",
        "information_theory": "MultiInfoTheory",
        "multigroup_gini": "MultiGini",
        "normalized_exposure": "MultiNormExposure",
        "relative_diversity": "MultiRelativeDiversity",
        "simpsons_concentration": "SimpsonsConcentration",
        "simpsons_interaction": "SimpsonsInteraction",
        "squared_coefficient_of_variation": "MultiSquaredCoefVar",
    }
    r = compute_indices(ds, groups=groups, indices=list(expected))
    for ours, theirs in expected.items():
        assert r[ours].value == pytest.approx(multi[theirs], abs=1e-6), ours


# --- properties --------------------------------------------------------------------------------------------

counts = st.lists(st.tuples(st.integers(0, 300), st.integers(0, 300)), min_size=3, max_size=25).filter(
    lambda rows: sum(a for a, _ in rows) > 0 and sum(b for _, b in rows) > 0
)


@settings(max_examples=40, deadline=None)
@given(rows=counts, factor=st.integers(2, 7), seed=st.integers(0, 2**16))
def test_scaling_and_reordering_leave_aspatial_indices_unchanged(rows, factor, seed):
    a, b = (np.array(c, dtype=float) for c in zip(*rows))
    X = np.column_stack([a, b])
    for name in TWO_GROUP:
        f = get(name).evaluator()
        base = f(a, a + b)
        assert f(a * factor, (a + b) * factor) == pytest.approx(base, rel=1e-9, abs=1e-12), name
        order = np.random.default_rng(seed).permutation(len(a))
        assert f(a[order], (a + b)[order]) == pytest.approx(base, rel=1e-9, abs=1e-12), name
    for name in MULTI:
        f = get(name).evaluator()
        base = f(X)
        if name == "mutual_information":
            assert f(X * factor) == pytest.approx(base, rel=1e-9, abs=1e-12)
        else:
            assert f(X * factor) == pytest.approx(base, rel=1e-9, abs=1e-12), name
        assert f(X[np.random.default_rng(seed).permutation(len(a))]) == pytest.approx(base, rel=1e-9, abs=1e-12), name


def test_batched_evaluation_equals_one_by_one():
    rng = np.random.default_rng(0)
    t = rng.integers(1, 100, size=(5, 30)).astype(float)
    x = np.floor(t * rng.random((5, 30)))
    for name in TWO_GROUP:
        f = get(name).evaluator()
        np.testing.assert_allclose(f(x, t), [f(x[i], t[i]) for i in range(5)], rtol=1e-12)
    X = np.stack([x, t - x], axis=-1)
    for name in MULTI:
        f = get(name).evaluator()
        np.testing.assert_allclose(f(X), [f(X[i]) for i in range(5)], rtol=1e-12)
