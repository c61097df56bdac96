"""Statistics that never mislead (issue 17): distance-decay indices equal to the dense formula at every scale,
degenerate inputs said out loud, and significance a planner can use."""

from __future__ import annotations

import subprocess
import warnings

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import box

from conftest import ROOT, SEGMAP, shared_path
from spatial import multiple_testing as mt
from spatial.dataset import validate
from spatial.errors import ValidationError
from spatial.indices import spatial_context
from spatial.indices.compute import compute_indices
from spatial.io import load_dataset
from spatial.local import local_statistic

warnings.filterwarnings("ignore")
DECAY = ["spatial_proximity", "relative_clustering", "distance_decay_isolation", "distance_decay_exposure"]


def grid(size: int, cell: float, x=None, t=None, seed: int = 0):
    """A size × size tiling of square cells (metres, UTM 33N); by default a group clustered in the west third."""
    rng = np.random.default_rng(seed)
    i, j = np.divmod(np.arange(size * size), size)
    t = rng.integers(100, 900, size * size) if t is None else np.asarray(t)
    x = rng.binomial(t, np.where(i < size // 3, 0.6, 0.1)) if x is None else np.asarray(x)
    gdf = gpd.GeoDataFrame(
        {"id": [f"c{i_}_{j_}" for i_, j_ in zip(i, j)], "t": t, "x": x},
        geometry=shapely.box(i * cell, j * cell, (i + 1) * cell, (j + 1) * cell),
        crs="EPSG:32633",
    )
    return validate(gdf, id_col="id", groups=["x"], total="t")


@pytest.fixture(scope="module")
def georgia(georgia_paths):
    return load_dataset(
        georgia_paths["boundaries"],
        counts=georgia_paths["counts"],
        key="area_key",
        groups=["black", "foreign_born"],
        total="total_population",
    )


# ---------------------------------------------------------------- 1. distance decay against the dense formula


def dense_decay(ds, group):
    """Massey & Denton's formulas with every pair: c_ij = exp(−d_ij), d between centroids in km,
    c_ii = exp(−√(0.6 a_i)), a_i in km² — an n × n matrix, straight from the definitions."""
    metric = ds.metric
    xy = np.column_stack([metric.geometry.centroid.x, metric.geometry.centroid.y]) / 1000.0
    area = metric.geometry.area.to_numpy() / 1e6
    c = np.exp(-np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2)))
    c[np.diag_indices_from(c)] = np.exp(-np.sqrt(0.6 * area))
    x, t = ds.counts(group)
    y = t - x
    X, Y, T = x.sum(), y.sum(), t.sum()
    pxx, pyy, ptt = x @ c @ x / X**2, y @ c @ y / Y**2, t @ c @ t / T**2
    k = c * t[None, :] / (c @ t)[:, None]  # K_ij = c_ij t_j / Σ_j c_ij t_j
    with np.errstate(divide="ignore", invalid="ignore"):
        px, py = np.where(t > 0, x / t, 0), np.where(t > 0, y / t, 0)
    return {
        "spatial_proximity": (X * pxx + Y * pyy) / (T * ptt),
        "relative_clustering": pxx / pyy - 1,
        "distance_decay_isolation": (x / X * (k @ px)).sum(),
        "distance_decay_exposure": (x / X * (k @ py)).sum(),
    }


def assert_dense(ds, group):
    ours = compute_indices(ds, group=group, indices=DECAY)
    ref = dense_decay(ds, group)
    for name in DECAY:
        err = abs(ours[name].value - ref[name]) / abs(ref[name])
        bound = ours[name].params["decay_max_relative_error"]
        assert err <= 1e-6, (name, ours[name].value, ref[name])
        assert bound is not None and bound <= 1e-6 and err <= bound + 1e-12, (name, err, bound)  # the bound holds
        assert not ours[name].notes
    return ours, ref


def sacramento():
    gdf = gpd.read_file(shared_path("sacramento", "sacramento1.geojson"))
    gdf = gdf.rename(columns=lambda c: c.rstrip("_") if c != "geometry" else c).to_crs(26910)
    gdf["tract"] = [f"t{i}" for i in range(len(gdf))]
    return load_dataset(gdf, key="tract", groups=["HISP"], total="TOT_POP"), "HISP"


def chicago():
    gdf = gpd.read_file(shared_path("chicago", "Chicago_2020.geojson")).to_crs(26916)
    return load_dataset(gdf, key="GEOID", groups=["FOR_BORN"], total="TOT_POP"), "FOR_BORN"


def berlin():
    gdf = gpd.read_file(shared_path("berlin", "berlin-lor-planning-areas-until-2020.geojson"))
    gdf = gdf[~gdf["id"].duplicated(keep=False)]  # the file repeats one id (see the data README)
    return load_dataset(
        gdf,
        counts=shared_path("berlin", "berlin-lor-population-2020-02-t1-planning-areas.csv"),
        key="id",
        drop_unmatched=True,
        total="inhabitants",
        groups=["inhabitants_foreigners"],
    ), "inhabitants_foreigners"


@pytest.mark.parametrize("group", ["black", "foreign_born"])
def test_county_sized_decay_equals_the_dense_formula_on_georgia(georgia, group):
    # Own proximities exp(−√(0.6 a)) of ~1e-11 used to be all that survived a fixed 1e-4 floor.
    ours, ref = assert_dense(georgia, group)
    ctx = spatial_context.SpatialContext(georgia)
    assert ctx.decay.nnz < georgia.n**2  # pairs were dropped, by each row's own scale
    if group == "black":
        assert ours["distance_decay_isolation"].value == pytest.approx(0.3113, abs=5e-5)
        aspatial = compute_indices(georgia, group=group, indices=["isolation"])["isolation"].value
        assert aspatial == pytest.approx(0.374754, abs=1e-6)


@pytest.mark.parametrize("load", [sacramento, chicago, berlin], ids=["sacramento", "chicago", "berlin"])
def test_tract_sized_decay_equals_the_dense_formula(load):
    assert_dense(*load())


def test_block_sized_decay_equals_the_dense_formula():
    assert_dense(grid(40, 100.0), "x")  # 1,600 blocks of 100 m


def test_over_the_pair_budget_the_error_bound_is_reported_and_holds(monkeypatch):
    ds = grid(40, 100.0)
    ref = dense_decay(ds, "x")
    monkeypatch.setattr(spatial_context, "PAIR_BUDGET", 100_000)  # a "dense city": 1,600 areas, 2.56 M pairs
    ours = compute_indices(ds, group="x", indices=DECAY)
    for name in DECAY:
        p = ours[name].params
        assert p["decay_pair_budget"] == 100_000
        err = abs(ours[name].value - ref[name])
        assert err <= p["decay_max_abs_error"], name  # rigorous: never below the actual error
        if p["decay_max_relative_error"] is not None:
            assert err / abs(ref[name]) <= p["decay_max_relative_error"], name
        assert any(n.code == "decay_truncated" for n in ours[name].notes), name
    assert any(err > 1e-6 for err in (abs(ours[n].value - ref[n]) / abs(ref[n]) for n in DECAY))  # it did matter


# ---------------------------------------------------------------- 3. degenerate inputs


def test_same_composition_everywhere_is_no_variation_not_a_cluster():
    t = np.arange(1, 26) * 40
    ds = grid(5, 1000.0, x=t // 5, t=t)  # every share 0.2; their mean is not exactly 0.2 in floats
    assert 0 < ds.share("x").std() < 1e-15
    gi = local_statistic(ds, "x", "gi_star", permutations=0)
    assert set(gi.labels) == {"not_significant"}  # was: 25 cold spots
    lisa = local_statistic(ds, "x", "lisa", permutations=99, seed=1)
    assert set(lisa.labels) == {"not_significant"}
    assert lisa.summary["global_moran"]["moran_i"] is None  # was: 1.0
    assert local_statistic(ds, "x", "lisa", permutations=0).summary["global_moran"]["moran_i"] is None
    for res in (gi, lisa):
        assert any(n.code == "no_variation" for n in res.notes)


@pytest.mark.parametrize("statistic", ["lisa", "gi_star", "bivariate_lisa"])
def test_one_area_says_it_has_no_neighbours(statistic):
    gdf = gpd.GeoDataFrame({"id": ["only"], "t": [100], "x": [30]}, geometry=[box(0, 0, 1000, 1000)], crs="EPSG:32633")
    ds = validate(gdf, id_col="id", groups=["x"], total="t")
    with pytest.raises(ValidationError, match="only one area.*no neighbours"):
        local_statistic(ds, "x", statistic, permutations=99, other="x")
    assert local_statistic(ds, "x", "lq").labels[0] != "no_population"  # the LQ needs no neighbours


@pytest.fixture(scope="module")
def with_empty_areas():
    """A 10 × 10 city with a planted cluster, whose corner (0, 0) has only empty neighbours and four more empty cells."""
    rng = np.random.default_rng(4)
    i, j = np.divmod(np.arange(100), 10)
    t = rng.integers(200, 800, 100)
    x = rng.binomial(t, np.where((i >= 5) & (j >= 5), 0.5, 0.1))
    empty = ((i <= 1) & (j <= 1) & ~((i == 0) & (j == 0))) | np.isin(i * 10 + j, [44, 45, 72, 97])
    t[empty], x[empty] = 0, 0
    return grid(10, 1000.0, x=x, t=t), empty


def test_empty_areas_are_no_population_and_the_rest_equals_esda_on_the_subset(with_empty_areas):
    esda = pytest.importorskip("esda")
    from libpysal.graph import Graph

    ds, empty = with_empty_areas
    sub = ds.areas[~empty].set_index("id")
    y = (sub["x"] / sub["t"]).to_numpy()
    w = Graph.build_contiguity(sub, rook=False)  # contiguity among the populated areas only
    corner = list(ds.ids).index("c0_0")

    lisa = local_statistic(ds, "x", "lisa", permutations=0)
    assert (lisa.labels[empty] == "no_population").all()  # was: low_low, share 0
    assert lisa.labels[corner] == "no_neighbours"  # its neighbours are all empty
    ref = esda.Moran_Local(y, w.transform("r"), permutations=0)
    np.testing.assert_allclose(lisa.values[~empty], ref.Is, atol=1e-9)
    assert np.isnan(lisa.values[empty]).all()
    assert lisa.summary["global_moran"]["moran_i"] == pytest.approx(
        esda.Moran(y, w.transform("r"), permutations=0).I, abs=1e-12
    )
    gi = local_statistic(ds, "x", "gi_star", permutations=0)
    ref_gi = esda.G_Local(y, w.transform("b"), transform="B", star=True, permutations=0)
    keep = ~empty & (np.arange(100) != corner)  # esda's Gi* of an island is not a test
    np.testing.assert_allclose(gi.z[keep], ref_gi.Zs[keep[~empty]], atol=1e-9)
    assert (gi.labels[empty] == "no_population").all() and gi.labels[corner] == "no_neighbours"
    assert any(n.code == "no_population" for n in gi.notes)

    # Permutation p-values: the family is the 90 populated areas with neighbours; two-sided = 2 × esda's folded p_sim.
    perm = local_statistic(ds, "x", "lisa", permutations=2999, seed=3)
    ref = esda.Moran_Local(y, w.transform("r"), permutations=2999, seed=3)
    ours = perm.p_value[keep]
    assert np.isnan(perm.p_value[~keep]).all() and np.isnan(perm.q_value[~keep]).all()
    assert np.corrcoef(ours, np.minimum(1, 2 * ref.p_sim[keep[~empty]]))[0, 1] > 0.99
    np.testing.assert_allclose(perm.q_value[keep], hand_bh(ours), rtol=1e-12)
    hh = perm.labels == "high_high"
    i, j = np.divmod(np.arange(100), 10)
    assert hh.any() and ((i >= 5) & (j >= 5))[hh].all()


def hand_bh(p):
    """Benjamini–Hochberg by its definition: q_(i) = min over j ≥ i of p_(j) · m / j."""
    m = len(p)
    order = np.argsort(p)
    q = np.empty(m)
    for rank in range(m):
        q[order[rank]] = min(1.0, min(p[order[k]] * m / (k + 1) for k in range(rank, m)))
    return q


@pytest.fixture(scope="module")
def rio():
    bairros = gpd.read_file(shared_path("rio", "Limite_de_Bairros.shp")).to_crs(31983)
    area = bairros.geometry.area
    rng = np.random.default_rng(0)
    bairros["t"] = np.round(area / 100).astype(int)
    bairros["x"] = rng.binomial(bairros["t"], rng.beta(2, 8, len(bairros)))  # any composition: the test is the family
    bairros["id"] = bairros["codbnum"].astype(str)
    return validate(bairros[["id", "nome", "t", "x", "geometry"]], id_col="id", groups=["x"], total="t")


def test_gi_star_without_permutations_leaves_islands_out_of_the_family_on_rio(rio):
    gi = local_statistic(rio, "x", "gi_star", permutations=0)
    islands = gi.labels == "no_neighbours"
    assert islands.sum() == 2  # Paquetá, Cidade Universitária
    assert np.isnan(gi.p_value[islands]).all() and np.isnan(gi.q_value[islands]).all()  # was q = 0.838 beside p = NaN
    np.testing.assert_allclose(gi.q_value[~islands], hand_bh(gi.p_value[~islands]), rtol=1e-12)
    bonf = local_statistic(rio, "x", "gi_star", permutations=0, correction="bonferroni")
    np.testing.assert_allclose(bonf.q_value[~islands], np.minimum(1, bonf.p_value[~islands] * 163), rtol=1e-12)


def test_concentration_on_equal_areas_says_why_it_is_undefined():
    r = compute_indices(
        grid(6, 500.0), group="x", indices=["absolute_concentration", "relative_concentration", "delta"]
    )
    for name in ("absolute_concentration", "relative_concentration"):
        assert np.isnan(r[name].value)
        assert [n.code for n in r[name].notes] == ["undefined"] and "same size" in r[name].notes[0].message
        assert r[name].to_dict()["notes"][0]["code"] == "undefined"
    assert np.isfinite(r["delta"].value) and not r["delta"].notes


def test_cli_local_into_a_closed_pipe_ends_quietly(georgia_args):
    cmd = [*SEGMAP, "local", *georgia_args, "--group", "foreign_born", "--permutations", "99"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before anything is written, like `| head` after its lines
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode == 141


# ---------------------------------------------------------------- 4. significance a planner can use


def test_permutations_needed_let_the_smallest_p_pass():
    for m in (1, 25, 26, 159, 448, 10_000):
        for correction in ("fdr", "bonferroni", "none"):
            n = mt.permutations_needed(m, 0.05, correction)
            assert mt.smallest_p(n) <= mt.first_threshold(m, 0.05, correction) and n >= 999
    assert mt.permutations_needed(25, 0.05, "fdr") == 999 and mt.permutations_needed(26, 0.05, "fdr") == 1999
    assert mt.permutations_needed(159, 0.05, "fdr") == 6999  # ≥ ceil(2 · 159 / 0.05) − 1 = 6359


def test_georgia_foreign_born_lisa_chooses_enough_permutations_and_explains(georgia):
    res = local_statistic(georgia, "foreign_born", "lisa", seed=0)
    info = res.summary["significance"]
    assert res.permutations == 6999 and info["permutations_chosen"] == "auto"
    assert mt.smallest_p(res.permutations) <= 0.05 / 159
    uncorrected = np.nan_to_num(res.p_value, nan=1) <= 0.05
    np.testing.assert_array_equal(res.columns["significant_uncorrected"], uncorrected)
    assert info["significant_uncorrected"] == uncorrected.sum() >= 10
    significant = (res.labels != "not_significant").sum()
    assert info["significant"] == significant
    assert "before correction" in info["explanation"]
    if significant == 0:  # the strongest county is short of FDR's first threshold: said, with the numbers
        assert "None passes" in info["explanation"] and f"{np.nanmin(res.p_value):.2g}" in info["explanation"]
    assert "significant_uncorrected" in res.to_frame()


def test_too_few_permutations_given_are_kept_with_a_warning(georgia):
    res = local_statistic(georgia, "foreign_born", "lisa", permutations=999, seed=0, correction="bonferroni")
    assert res.permutations == 999
    [note] = [n for n in res.notes if n.code == "permutations_too_few"]
    assert "no area can be significant" in note.message and "6,999" in note.message
    fdr = local_statistic(georgia, "foreign_born", "gi_star", permutations=999, seed=0)
    assert any("others as extreme" in n.message for n in fdr.notes)
    enough = local_statistic(georgia, "foreign_born", "lisa", permutations=6999, seed=0)
    assert not any(n.code == "permutations_too_few" for n in enough.notes)
    capped = local_statistic(georgia, "foreign_born", "lisa", seed=0, max_permutations=1999)
    assert capped.permutations == 1999 and any(n.code == "permutations_too_few" for n in capped.notes)


def test_chosen_permutations_find_a_cluster_that_999_cannot_under_bonferroni():
    ds = grid(12, 1000.0, seed=2)  # 144 areas, the west third clustered
    few = local_statistic(ds, "x", "gi_star", permutations=999, seed=1, correction="bonferroni")
    assert (few.labels == "hot_spot").sum() == 0  # 2/1000 > 0.05/144
    auto = local_statistic(ds, "x", "gi_star", seed=1, correction="bonferroni")
    assert auto.permutations == 5999 and (auto.labels == "hot_spot").sum() > 10


def test_map_view_and_summary_show_the_uncorrected_count(georgia):
    from maps.data import summary_text, view_data

    vd = view_data(georgia, "foreign_born", "lisa")
    info = vd.meta["summary"]["significance"]
    assert vd.meta["permutations"] == 6999
    assert info["explanation"] in vd.notes and info["explanation"] in summary_text(vd)
    assert f"{info['significant_uncorrected']} areas have p ≤ 0.05 before correction" in summary_text(vd)


def test_http_local_defaults_to_enough_permutations_capped_by_the_server(app_client):
    body = app_client.get(
        "/v1/datasets/georgia-1990/local", params={"group": "foreign_born", "statistic": "lisa"}
    ).json()
    meta = body["segmap"]
    info = meta["summary"]["significance"]
    assert info["permutations_chosen"] == "auto" and meta["permutations"] == mt.permutations_needed(
        info["tested"], 0.05, "fdr"
    )
    assert "significant_uncorrected" in body["features"][0]["properties"]
