"""Local statistics against esda on the same weights, planted clusters, islands, multiple testing."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pytest
import scipy.sparse as sp
from shapely.geometry import box

from conftest import shared_path
from spatial.dataset import validate
from spatial.errors import ValidationError
from spatial.local import empirical_bayes, local_statistic
from spatial.multiple_testing import adjust, benjamini_hochberg
from spatial.weights import build_weights

esda = pytest.importorskip("esda")
warnings.filterwarnings("ignore")


def grid_city(size=12, hot=None, seed=0, island=False):
    """A size×size grid of 1 km cells; ``hot`` cells get a high migrant share."""
    rng = np.random.default_rng(seed)
    cells = [(i, j) for i in range(size) for j in range(size)]
    total = rng.integers(200, 800, len(cells))
    p = np.array([0.5 if hot and hot(i, j) else 0.08 for i, j in cells])
    migrants = rng.binomial(total, p)
    geoms = [box(i * 1000, j * 1000, (i + 1) * 1000, (j + 1) * 1000) for i, j in cells]
    ids = [f"c{i}_{j}" for i, j in cells]
    if island:
        geoms.append(box(50_000, 50_000, 51_000, 51_000))
        ids.append("island")
        total = np.append(total, 300)
        migrants = np.append(migrants, 30)
    gdf = gpd.GeoDataFrame({"id": ids, "total": total, "migrants": migrants}, geometry=geoms, crs="EPSG:32633")
    return validate(gdf, id_col="id", groups=["migrants"], total="total")


@pytest.fixture(scope="module")
def berlin():
    gdf = gpd.read_file(shared_path("berlin", "berlin-lor-planning-areas-until-2020.geojson"))
    gdf = gdf[~gdf["id"].duplicated(keep=False)]
    from spatial.io import load_dataset

    return load_dataset(
        gdf,
        counts=shared_path("berlin", "berlin-lor-population-2020-02-t1-planning-areas.csv"),
        key="id",
        drop_unmatched=True,
        total="inhabitants",
        groups=["inhabitants_foreigners", "inhabitants_with_migration_background"],
    )


def test_lisa_gi_bivariate_equal_esda_on_berlin(berlin):
    g = "inhabitants_foreigners"
    w = build_weights(berlin, "queen").graph
    y = berlin.share(g)
    lisa = local_statistic(berlin, g, "lisa", permutations=0)
    np.testing.assert_allclose(lisa.values, esda.Moran_Local(y, w, permutations=0).Is, atol=1e-9)
    gi = local_statistic(berlin, g, "gi_star", permutations=0)
    np.testing.assert_allclose(
        gi.z, esda.G_Local(y, w.transform("b"), transform="B", star=True, permutations=0).Zs, atol=1e-9
    )
    other = berlin.share("inhabitants_with_migration_background")
    bv = local_statistic(berlin, g, "bivariate_lisa", other="inhabitants_with_migration_background", permutations=0)
    np.testing.assert_allclose(bv.values, esda.Moran_Local_BV(y, other, w, permutations=0).Is, atol=1e-9)
    assert lisa.summary["global_moran"]["moran_i"] == pytest.approx(esda.Moran(y, w, permutations=0).I, abs=1e-12)


def test_permutation_labels_agree_with_esda_two_sided(berlin):
    g = "inhabitants_foreigners"
    ours = local_statistic(berlin, g, "lisa", permutations=4999, seed=7)
    ref = esda.Moran_Local(berlin.share(g), build_weights(berlin, "queen").graph, permutations=4999, seed=7)
    p_two = np.minimum(1, 2 * ref.p_sim)  # esda's p_sim is folded one-sided
    _, sig = adjust(p_two, 0.05, "fdr")
    quad = np.array(["", "high_high", "low_high", "low_low", "high_low"])[ref.q]
    ref_labels = np.where(sig, quad, "not_significant")
    agreement = np.mean(ref_labels == ours.labels)
    assert agreement > 0.97, agreement  # Monte Carlo noise only flips areas near the threshold
    assert np.corrcoef(p_two, ours.p_value)[0, 1] > 0.99


def test_planted_cluster_is_found_and_noise_is_not():
    hot = lambda i, j: 2 <= i <= 5 and 3 <= j <= 6  # noqa: E731
    ds = grid_city(hot=hot)
    res = local_statistic(ds, "migrants", "lisa", permutations=999, seed=1)
    planted = np.array([hot(int(s[1:].split("_")[0]), int(s.split("_")[1])) for s in ds.ids])
    hh = res.labels == "high_high"
    assert hh[planted].mean() > 0.5 and not hh[~planted].any()
    gi = local_statistic(ds, "migrants", "gi_star", permutations=999, seed=1)
    assert (gi.labels[planted] == "hot_spot").mean() > 0.5
    calm = local_statistic(grid_city(seed=3), "migrants", "lisa", permutations=999, seed=1)
    assert (calm.labels != "not_significant").sum() <= 3  # FDR keeps false clusters rare


def test_same_seed_same_result_and_islands_have_no_p():
    ds = grid_city(hot=lambda i, j: i < 3, island=True)
    a = local_statistic(ds, "migrants", "lisa", permutations=199, seed=5)
    b = local_statistic(ds, "migrants", "lisa", permutations=199, seed=5)
    np.testing.assert_array_equal(a.p_value, b.p_value)
    i = list(ds.ids).index("island")
    assert a.labels[i] == "no_neighbours" and np.isnan(a.p_value[i])
    assert a.weights["islands"] == ["island"] and a.weights["n_components"] == 2
    assert any(n.code == "islands" for n in a.notes)
    gi = local_statistic(ds, "migrants", "gi_star", permutations=99, seed=5)
    assert gi.labels[i] == "no_neighbours"


def test_location_quotient_and_entropy():
    ds = grid_city(hot=lambda i, j: i < 2)
    lq = local_statistic(ds, "migrants", "lq")
    x, t = ds.counts("migrants")
    np.testing.assert_allclose(lq.values, (x / t) / (x.sum() / t.sum()))
    assert set(lq.labels[:24]) == {"over_represented"}
    ent = local_statistic(ds, "migrants", "entropy")
    p = x / t
    np.testing.assert_allclose(ent.values, -(p * np.log(p) + (1 - p) * np.log(1 - p)) / np.log(2))


def test_multiple_testing_corrections():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, np.nan])
    q = benjamini_hochberg(p)
    # Hand-computed BH: p_(i) m / i with m = 8, then cumulative minimum from the top.
    assert q[0] == pytest.approx(0.008) and q[1] == pytest.approx(0.032) and q[4] == pytest.approx(0.0672)
    assert np.isnan(q[-1])
    assert adjust(p, 0.05, "bonferroni")[1].sum() == 1
    assert adjust(p, 0.05, "none")[1].sum() == 5
    assert adjust(p, 0.05, "fdr")[1].sum() == 2
    with pytest.raises(ValidationError, match="correction"):
        adjust(p, 0.05, "holm-ish")


def test_empirical_bayes_pulls_small_areas_to_the_city_share():
    x = np.array([3.0, 300, 100, 1])
    t = np.array([4.0, 1000, 1000, 2])
    smoothed, weight = empirical_bayes(x, t)
    city = x.sum() / t.sum()
    assert weight[0] < weight[1] and abs(smoothed[0] - city) < abs(x[0] / t[0] - city)
    ds = grid_city(hot=lambda i, j: i < 2)
    res = local_statistic(ds, "migrants", "lisa", smoothing="eb", permutations=99, seed=1)
    assert "smoothed_share" in res.columns and any(n.code == "smoothed" for n in res.notes)


def test_bad_parameters_are_clear():
    ds = grid_city()
    with pytest.raises(ValidationError, match="Unknown local statistic"):
        local_statistic(ds, "migrants", "hotness")
    with pytest.raises(ValidationError, match="alpha"):
        local_statistic(ds, "migrants", "lisa", alpha=2)
    with pytest.raises(ValidationError, match="Unknown weights"):
        local_statistic(ds, "migrants", "lisa", weights="telepathy")
    with pytest.raises(ValidationError, match="bivariate_lisa needs"):
        local_statistic(ds, "migrants", "bivariate_lisa")


@pytest.mark.parametrize(
    "kind, kw", [("rook", {}), ("knn", {"k": 4}), ("distance", {"distance": 1500}), ("kernel", {"k": 6})]
)
def test_other_weights_build_and_align_with_ids(kind, kw):
    ds = grid_city(size=6)
    w = build_weights(ds, kind, **kw)
    assert list(w.graph.unique_ids) == list(ds.ids)
    assert np.allclose(np.asarray(w.sparse.sum(axis=1)).ravel(), 1.0)
    assert build_weights(ds, kind, **kw) is w  # cached per dataset and parameters


def test_random_city_false_positives_about_alpha_n_without_fdr_and_far_fewer_with_it():
    ds = grid_city(size=20, seed=11)  # no pattern: migrants drawn independently everywhere
    raw = local_statistic(ds, "migrants", "lisa", permutations=999, seed=3, correction="none")
    fdr = local_statistic(ds, "migrants", "lisa", permutations=999, seed=3, correction="fdr")
    n_raw = int((raw.labels != "not_significant").sum())
    n_fdr = int((fdr.labels != "not_significant").sum())
    assert 0.3 * 0.05 * ds.n <= n_raw <= 2.5 * 0.05 * ds.n  # about alpha × n = 20
    assert n_fdr <= max(2, n_raw // 5)


def test_issue_names_are_accepted_as_aliases():
    ds = grid_city(size=6)
    assert local_statistic(ds, "migrants", "moran", permutations=0).statistic == "lisa"
    assert local_statistic(ds, "migrants", "location_quotient").statistic == "lq"


def _brute_force_permutation(z, W, observed, scale, draws, permutations):
    """The textbook loop: each area's neighbours replaced by the drawn areas, skipping itself."""
    W = W.tocsr()
    p = np.full(len(z), np.nan)
    for i in range(len(z)):
        row = slice(W.indptr[i], W.indptr[i + 1])
        w = W.data[row][W.indices[row] != i]
        k = len(w)
        if k == 0:
            continue
        sims = []
        for d in draws:
            chosen = list(d[:k])
            if i in chosen:
                chosen[chosen.index(i)] = d[k]
            sims.append(scale[i] * (w * z[chosen]).sum())
        sims = np.array(sims)
        tol = 1e-9 * max(1.0, abs(observed[i]))
        above, below = (sims >= observed[i] - tol).sum(), (sims <= observed[i] + tol).sum()
        p[i] = min(1.0, 2 * (1 + min(above, below)) / (1 + permutations))
    return p


@pytest.mark.parametrize("kind", ["binary", "row_standardised", "unequal"])
def test_fast_conditional_permutation_equals_the_textbook_loop(kind):
    from spatial.local import _draw_others, conditional_permutation

    rng = np.random.default_rng(3)
    n, permutations = 60, 199
    A = sp.random(n, n, density=0.08, random_state=4, data_rvs=lambda m: rng.uniform(0.5, 2, m))
    A = ((A + A.T) > 0).astype(float) if kind != "unequal" else (A + A.T)
    A = sp.csr_matrix(A - sp.diags(A.diagonal()))
    if kind == "row_standardised":
        A = sp.csr_matrix(sp.diags(1 / np.maximum(1, np.asarray(A.sum(axis=1)).ravel())) @ A)
    z = rng.normal(size=n)
    z[:10] = 0.0  # ties, as shares of zero give
    scale = rng.normal(size=n)
    scale[3] = 0.0
    observed = scale * (A @ z)
    p, _ = conditional_permutation(z, A, observed, scale, permutations, np.random.default_rng(9))
    kmax = int(np.diff(A.indptr).max())
    draws = _draw_others(np.random.default_rng(9), permutations, n, kmax + 1)
    expected = _brute_force_permutation(z, A, observed, scale, draws, permutations)
    np.testing.assert_array_equal(np.isnan(p), np.isnan(expected))
    np.testing.assert_allclose(p[~np.isnan(p)], expected[~np.isnan(expected)])


def _contiguity_cases():
    from shapely.geometry import MultiPolygon, Polygon

    def square(x, y, s=1.0):
        return box(x, y, x + s, y + s)

    holed = Polygon([(10, 0), (14, 0), (14, 4), (10, 4)], [[(11, 1), (13, 1), (13, 3), (11, 3)]])
    cases = {
        "toy": gpd.GeoSeries(
            [
                square(0, 0),
                square(1, 0),
                square(1, 1),
                square(5, 5),  # corner touch, island
                MultiPolygon([square(2, 0), square(7, 7)]),
                square(6, 7),  # multipolygon part touches
                holed,
                square(11, 1, 2.0),
            ]
        )
    }  # a polygon filling a hole
    try:
        cases["rio"] = gpd.read_file(shared_path("rio", "Limite_de_Bairros.shp")).geometry
    except pytest.skip.Exception:
        pass
    return cases


@pytest.mark.parametrize("rook", [False, True])
def test_contiguity_equals_libpysal(rook):
    from libpysal.graph import Graph

    from spatial.weights import _contiguity_graph

    for name, geoms in _contiguity_cases().items():
        gdf = gpd.GeoDataFrame(geometry=geoms.reset_index(drop=True))
        expected, ours = (
            Graph.build_contiguity(gdf, rook=rook).sparse.tocsr(),
            _contiguity_graph(gdf, rook).sparse.tocsr(),
        )
        expected.eliminate_zeros()
        ours.eliminate_zeros()
        assert (expected != ours).nnz == 0, name
        assert set(Graph.build_contiguity(gdf, rook=rook).isolates) == set(_contiguity_graph(gdf, rook).isolates), name
