"""Local change (spatial/change/local_change.py): the two-proportion test against statsmodels, FDR against
statsmodels' Benjamini–Hochberg, location quotients by hand, LISA transitions against giddy's LISA_Markov."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spatial.change.local_change import lisa_transitions, local_change
from spatial.errors import ValidationError
from spatial.local.statistics import QUADRANTS


@pytest.fixture(scope="module")
def dates():
    rng = np.random.default_rng(11)
    n = 200
    t1 = rng.integers(30, 3000, n)
    t2 = t1 + rng.integers(-20, 200, n)
    p = rng.beta(2, 6, n)
    x1 = rng.binomial(t1, p)
    x2 = rng.binomial(t2, np.clip(p + np.where(np.arange(n) < 40, 0.08, 0.0), 0, 1))  # 40 areas really change
    ids = [f"a{i}" for i in range(n)]
    return (
        pd.DataFrame({"migrants": x1, "total": t1}, index=ids),
        pd.DataFrame({"migrants": x2, "total": t2}, index=ids),
    )


def test_change_test_equals_statsmodels_two_proportion_z_and_bh(dates):
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    d1, d2 = dates
    res = local_change(d1, d2, "migrants", "total")
    z = np.empty(len(d1))
    p = np.empty(len(d1))
    for i in range(len(d1)):
        z[i], p[i] = proportion.proportions_ztest(
            [d2["migrants"].iloc[i], d1["migrants"].iloc[i]], [d2["total"].iloc[i], d1["total"].iloc[i]]
        )
    np.testing.assert_allclose(res["z"], z, rtol=1e-10)
    np.testing.assert_allclose(res["p_value"], p, rtol=1e-9, atol=1e-300)
    reject, q, *_ = multitest.multipletests(p, alpha=0.05, method="fdr_bh")
    np.testing.assert_allclose(res["q_value"], q, rtol=1e-12)
    assert (res["significant"].to_numpy() == reject).all()
    assert res["significant"].iloc[:40].mean() > 0.7 and res["significant"].iloc[40:].mean() < 0.1


def test_share_change_and_location_quotients_by_hand(dates):
    d1, d2 = dates
    res = local_change(d1, d2, "migrants", "total")
    a = d1.iloc[7]
    b = d2.iloc[7]
    s1, s2 = a["migrants"] / a["total"], b["migrants"] / b["total"]
    city1 = d1["migrants"].sum() / d1["total"].sum()
    city2 = d2["migrants"].sum() / d2["total"].sum()
    row = res.iloc[7]
    assert row["change_pp"] == pytest.approx(100 * (s2 - s1))
    assert row["lq1"] == pytest.approx(s1 / city1) and row["lq2"] == pytest.approx(s2 / city2)
    assert row["lq_change"] == pytest.approx(s2 / city2 - s1 / city1)
    up = res["significant"] & (res["change_pp"] > 0)
    assert (res.loc[up, "direction"] == "increase").all()


def test_areas_are_aligned_by_id_and_empty_areas_get_no_test(dates):
    d1, d2 = dates
    d2 = d2.iloc[::-1].copy()
    d1 = d1.copy()
    d1.iloc[3] = [0, 0]
    res = local_change(d1, d2, "migrants", "total")
    assert np.isnan(res["p_value"].iloc[3]) and not res["significant"].iloc[3]
    straight = local_change(dates[0], dates[1], "migrants", "total")
    assert res["change_pp"].iloc[10] == straight["change_pp"].iloc[10]


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda d: d.rename(columns={"migrants": "foreigners"}), "missing_group"),
        (lambda d: d.iloc[1:], "units_differ"),
        (lambda d: d.assign(migrants=d["total"] + 1), "bad_count"),
    ],
)
def test_bad_input_says_what_to_fix(dates, mutate, code):
    with pytest.raises(ValidationError) as err:
        local_change(dates[0], mutate(dates[1]), "migrants", "total")
    assert err.value.code == code


def test_lisa_transitions_equal_giddy_lisa_markov_counts():
    giddy = pytest.importorskip("giddy.markov")
    from esda.moran import Moran_Local
    from libpysal.weights import lat2W

    w = lat2W(12, 12)
    w.transform = "r"
    rng = np.random.default_rng(2)
    base = rng.normal(size=144).cumsum()  # a smooth-ish surface, so all quadrants appear
    y = np.column_stack([base, base + rng.normal(scale=3, size=144)])
    ref = giddy.LISA_Markov(y, w)
    labels = [QUADRANTS[Moran_Local(y[:, k], w, permutations=0).q - 1] for k in range(2)]
    res = lisa_transitions(labels[0], labels[1])
    np.testing.assert_array_equal(res.counts.loc[list(QUADRANTS), list(QUADRANTS)].to_numpy(), ref.transitions)
    np.testing.assert_allclose(res.probabilities.loc[list(QUADRANTS), list(QUADRANTS)].to_numpy(), ref.p)
    assert res.counts.to_numpy().sum() == 144
    assert res.per_area.iloc[0] == f"{labels[0][0]}→{labels[1][0]}"


def test_lisa_transitions_count_significance_changes_and_align_series():
    a = pd.Series(["high_high", "not_significant", "low_low", "high_high"], index=["w", "x", "y", "z"])
    b = pd.Series(["not_significant", "high_high", "low_low", "no_neighbours"], index=["z", "y", "x", "w"])
    res = lisa_transitions(a, b)
    assert res.counts.loc["high_high", "not_significant"] == 1  # z
    assert res.counts.loc["high_high", "no_neighbours"] == 1  # w
    assert res.counts.loc["not_significant", "low_low"] == 1  # x
    assert res.counts.loc["low_low", "high_high"] == 1  # y
    assert res.per_area["z"] == "high_high→not_significant"
    with pytest.raises(ValidationError):
        lisa_transitions(a, b.iloc[:3])


def test_segmap_lisa_labels_tabulate_as_giddy_where_quadrants_agree():
    """segmap's own LISA labels (every area labelled by its quadrant: alpha near 1, no correction) at two dates
    of a 12 × 12 grid, against giddy's LISA_Markov on the same shares and queen weights: the areas whose
    quadrant segmap and esda agree on (all of them here) have the same transition counts."""
    giddy = pytest.importorskip("giddy.markov")
    import geopandas as gpd
    from libpysal.weights import lat2W
    from shapely.geometry import box

    from spatial.dataset import validate
    from spatial.local import local_statistic

    rng = np.random.default_rng(6)
    side = 12
    cells = [box(i, -j - 1, i + 1, -j) for j in range(side) for i in range(side)]  # row-major, as lat2W
    total = rng.integers(200, 800, side * side)
    trend = np.add.outer(np.arange(side), np.arange(side)).ravel() / (2 * side)
    labels, shares = [], []
    for k in range(2):
        x = rng.binomial(total, np.clip(0.1 + 0.5 * trend + rng.normal(0, 0.08, side * side) * (k + 1), 0, 1))
        gdf = gpd.GeoDataFrame(
            {"id": [f"c{i}" for i in range(side * side)], "g": x, "t": total}, geometry=cells, crs=3857
        )
        ds = validate(gdf, id_col="id", groups=["g"], total="t")
        res = local_statistic(ds, "g", "lisa", permutations=99, seed=1, alpha=0.999, correction="none")
        labels.append(pd.Series(res.labels, index=res.ids))
        shares.append(x / total)
    ref = giddy.LISA_Markov(np.column_stack(shares), lat2W(side, side, rook=False))
    esda = [pd.Series(QUADRANTS[ref.q[:, k] - 1], index=labels[0].index) for k in range(2)]
    agree = (labels[0] == esda[0]) & (labels[1] == esda[1])
    assert agree.mean() > 0.9, agree.mean()  # 100 % on this grid
    ours = lisa_transitions(labels[0][agree], labels[1][agree]).counts.loc[list(QUADRANTS), list(QUADRANTS)]
    theirs = pd.crosstab(ref.q[agree.to_numpy(), 0], ref.q[agree.to_numpy(), 1]).reindex(
        index=[1, 2, 3, 4], columns=[1, 2, 3, 4], fill_value=0
    )
    np.testing.assert_array_equal(ours.to_numpy(), theirs.to_numpy())
    if agree.all():
        np.testing.assert_array_equal(ours.to_numpy(), ref.transitions)
