"""Decomposing a change in segregation (spatial/change/decompose.py).

Shapley (Elbers 2021): checked against a second implementation written here from the definitions — IPF in
closed form for 2 × 2 tables (the fitted table keeps the seed's odds ratio), M and H by hand, Shapley values
by averaging over the orders of the factors — and against the properties the R package's own tests assert
(parts add up, symmetric in units/groups and in the dates). D: equal to pysal ``segregation``'s
``DecomposeSegregation`` for its three counterfactual approaches.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from spatial.change.decompose import PARTS, decompose_dissimilarity, shapley_decomposition
from spatial.errors import ValidationError

# The R package's test data (tests/testthat/test_mutual_difference.R): units a, b × groups 1–4.
R_DATA1 = pd.DataFrame([[40, 30, 20, 10], [5, 10, 15, 20]], index=["a", "b"], columns=["1", "2", "3", "4"])
R_DATA2 = pd.DataFrame([[20, 20, 20, 15], [5, 10, 10, 15]], index=["a", "b"], columns=["1", "2", "3", "4"])


def index_by_hand(p: np.ndarray, which: str) -> float:
    p = p / p.sum()
    r, c = p.sum(axis=1), p.sum(axis=0)
    m = sum(p[i, j] * math.log(p[i, j] / (r[i] * c[j])) for i in range(2) for j in range(2) if p[i, j] > 0)
    return m if which == "M" else m / -sum(x * math.log(x) for x in c if x > 0)


def fit_2x2(seed: np.ndarray, r1: float, c1: float) -> np.ndarray:
    """The 2 × 2 table of proportions with row-1 share r1, column-1 share c1 and the seed's odds ratio."""
    theta = seed[0, 0] * seed[1, 1] / (seed[0, 1] * seed[1, 0])
    lo, hi = max(0.0, r1 + c1 - 1), min(r1, c1)
    if abs(theta - 1) < 1e-15:
        a = r1 * c1
    else:
        qa, qb, qc = 1 - theta, 1 - r1 - c1 + theta * (r1 + c1), -theta * r1 * c1
        roots = np.roots([qa, qb, qc]).real
        a = next(x for x in roots if lo - 1e-12 <= x <= hi + 1e-12)
    return np.array([[a, r1 - a], [c1 - a, 1 - r1 - c1 + a]])


def shapley_by_definition(t1: np.ndarray, t2: np.ndarray, which: str) -> dict:
    """v(g, u, s): the index of the table with group margins g, unit margins u and structure s (each of date 1
    'A' or date 2 'B'). Structure against the margins taken together, then group against unit at each
    structure, each a two-player Shapley value (average over both orders)."""
    dates = {"A": t1 / t1.sum(), "B": t2 / t2.sum()}

    def v(g, u, s):
        if g == u == s:
            return index_by_hand(dates[s], which)
        return index_by_hand(fit_2x2(dates[s], dates[u].sum(axis=1)[0], dates[g].sum(axis=0)[0]), which)

    def two_player(first, both, second_alone, none):  # Shapley value of the first player
        return 0.5 * (first - none) + 0.5 * (both - second_alone)

    structural = two_player(v("A", "A", "B"), v("B", "B", "B"), v("B", "B", "A"), v("A", "A", "A"))
    group = np.mean([two_player(v("B", "A", s), v("B", "B", s), v("A", "B", s), v("A", "A", s)) for s in "AB"])
    unit = np.mean([two_player(v("A", "B", s), v("B", "B", s), v("B", "A", s), v("A", "A", s)) for s in "AB"])
    return {"group_marginal": group, "unit_marginal": unit, "structural": structural}


@pytest.mark.parametrize("which", ["M", "H"])
@pytest.mark.parametrize(
    ("t1", "t2"),
    [
        ([[400, 100], [150, 350]], [[300, 200], [250, 450]]),
        ([[9000, 1000], [2000, 3000]], [[8000, 4000], [1000, 6000]]),
        ([[50, 50], [50, 50]], [[70, 30], [20, 80]]),
    ],
)
def test_shapley_matches_a_closed_form_second_implementation(t1, t2, which):
    t1, t2 = np.array(t1, float), np.array(t2, float)
    res = shapley_decomposition(pd.DataFrame(t1), pd.DataFrame(t2), index=which).table["value"]
    expected = shapley_by_definition(t1, t2, which)
    for part, value in expected.items():
        assert res[part] == pytest.approx(value, abs=1e-9), part
    assert res["value1"] == pytest.approx(index_by_hand(t1, which), abs=1e-12)
    assert res["diff"] == pytest.approx(index_by_hand(t2, which) - index_by_hand(t1, which), abs=1e-12)


def parts(res) -> pd.Series:
    return res.table["value"]


@pytest.mark.parametrize("which", ["M", "H"])
def test_parts_add_up_exactly_and_are_symmetric(which):
    """The R package's own checks, to 1e-9 instead of its 1e-4 (its IPF stops at precision 0.001)."""
    sh1 = parts(shapley_decomposition(R_DATA1, R_DATA2, which))
    assert sh1[list(PARTS)].sum() == pytest.approx(sh1["diff"], abs=1e-15)
    assert sh1["additions"] == 0 and sh1["removals"] == 0
    swapped = parts(shapley_decomposition(R_DATA2, R_DATA1, which))
    for p in ("diff", "group_marginal", "unit_marginal", "structural"):
        assert swapped[p] == pytest.approx(-sh1[p], abs=1e-9)
    if which == "M":  # M is symmetric in units and groups; H (normalised by the groups' entropy) is not
        transposed = parts(shapley_decomposition(R_DATA1.T, R_DATA2.T, which))
        assert transposed["structural"] == pytest.approx(sh1["structural"], abs=1e-9)
        assert transposed["group_marginal"] == pytest.approx(sh1["unit_marginal"], abs=1e-9)
        assert transposed["unit_marginal"] == pytest.approx(sh1["group_marginal"], abs=1e-9)


def test_composition_only_change_has_no_structural_part():
    """Date 2 = date 1 re-fitted (by a plain loop, here) to more migrants and different area sizes: the odds
    ratios are unchanged, so the change is all marginal."""
    rng = np.random.default_rng(4)
    t1 = rng.integers(50, 500, (30, 3)).astype(float)
    t2 = t1.copy()
    rows, cols = rng.uniform(0.5, 2, 30) * t1.sum(axis=1), np.array([0.5, 1.5, 2.5]) * t1.sum(axis=0)
    cols *= rows.sum() / cols.sum()
    for _ in range(2000):
        t2 *= (rows / t2.sum(axis=1))[:, None]
        t2 *= cols / t2.sum(axis=0)
    res = parts(shapley_decomposition(t1, t2, "M"))
    assert abs(res["structural"]) < 1e-9
    assert abs(res["diff"]) > 1e-3
    assert res["group_marginal"] + res["unit_marginal"] == pytest.approx(res["diff"], abs=1e-9)


def test_areas_with_people_at_one_date_only_are_additions_and_removals():
    t1 = np.array([[100, 20], [50, 50], [0, 0], [30, 70]], float)
    t2 = np.array([[90, 30], [0, 0], [10, 80], [40, 60]], float)
    res = shapley_decomposition(t1, t2, "M")
    v = parts(res)
    assert v["additions"] != 0 and v["removals"] != 0
    assert v[list(PARTS)].sum() == pytest.approx(v["diff"], abs=1e-15)
    assert res.units == 2 and res.notes and res.notes[0].code == "not_at_both_dates"


def test_bootstrap_intervals_are_reproducible_and_bias_corrected_parts_add_up():
    rng = np.random.default_rng(8)
    t1 = rng.integers(20, 400, (40, 3))
    t2 = t1 + rng.integers(0, 80, (40, 3))
    a = shapley_decomposition(t1, t2, "M", n_boot=60, seed=3).table
    b = shapley_decomposition(t1, t2, "M", n_boot=60, seed=3).table
    pd.testing.assert_frame_equal(a, b)
    assert a.loc[list(PARTS), "bias_corrected"].sum() == pytest.approx(a.loc["diff", "bias_corrected"], abs=1e-12)
    assert (a["ci_low"] <= a["ci_high"]).all() and (a.loc["diff", "se"] > 0)
    assert a.loc["diff", "ci_low"] < a.loc["diff", "bias_corrected"] < a.loc["diff", "ci_high"]


@pytest.mark.parametrize(
    ("c2", "code"),
    [
        (R_DATA2.rename(columns={"4": "four"}), "groups_differ"),
        (R_DATA2.rename(index={"b": "c"}), "units_differ"),
        (R_DATA2.assign(**{"1": -1}), "bad_count"),
    ],
)
def test_bad_input_says_what_to_fix(c2, code):
    with pytest.raises(ValidationError) as err:
        shapley_decomposition(R_DATA1, c2)
    assert err.value.code == code


def test_total_completes_the_groups_with_the_rest():
    t1 = pd.DataFrame({"migrants": [10, 40, 70], "total": [100, 100, 100]})
    t2 = pd.DataFrame({"migrants": [20, 50, 60], "total": [110, 90, 100]})
    explicit = [d.assign(other=d["total"] - d["migrants"]).drop(columns="total") for d in (t1, t2)]
    a = shapley_decomposition(t1, t2, total="total").table
    b = shapley_decomposition(*explicit).table
    pd.testing.assert_frame_equal(a, b)


# --- D: pysal DecomposeSegregation -----------------------------------------------------------------------


def two_dates(n: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    t1, t2 = rng.integers(0, 800, n), rng.integers(0, 900, n)
    t1[:3] = 0  # empty areas and ties in the shares
    x1 = rng.binomial(t1, rng.beta(1, 4, n))
    x2 = rng.binomial(t2, rng.beta(1.5, 3, n))
    x2[5:9] = 0
    return x1, t1, x2, t2


@pytest.mark.parametrize("approach", ["composition", "share", "dual_composition"])
def test_dissimilarity_decomposition_equals_pysal(approach):
    from segregation.decomposition import DecomposeSegregation
    from segregation.singlegroup import Dissim

    x1, t1, x2, t2 = two_dates()
    ref = DecomposeSegregation(
        Dissim(pd.DataFrame({"x": x1, "t": t1}), "x", "t"),
        Dissim(pd.DataFrame({"x": x2, "t": t2}), "x", "t"),
        counterfactual_approach=approach,
    )
    res = decompose_dissimilarity(x1, t1, x2, t2, approach)
    # pysal reports D1 − D2; segmap D2 − D1 (a change over time)
    assert res["spatial"] == pytest.approx(-ref.c_s, abs=1e-6)
    assert res["attribute"] == pytest.approx(-ref.c_a, abs=1e-6)
    for key, value in ref.indices.items():
        assert res["indices"][key] == pytest.approx(value, abs=1e-6), key
    assert res["spatial"] + res["attribute"] == pytest.approx(res["diff"], abs=1e-12)


def test_dissimilarity_decomposition_refuses_what_it_cannot_measure():
    x1, t1, x2, t2 = two_dates()
    bad = x1.copy()
    bad[10] = t1[10] + 1
    for args, code in (
        ((bad, t1, x2, t2), "bad_count"),
        ((x1, t1[:-1], x2, t2), "bad_shape"),
        ((x1 * 0, t1, x2, t2), "no_population"),
    ):
        with pytest.raises(ValidationError) as err:
            decompose_dissimilarity(*args)
        assert err.value.code == code
    with pytest.raises(ValidationError):
        shapley_decomposition(R_DATA1, R_DATA2, n_boot=10**6)


def test_a_request_that_gave_up_stops_the_bootstrap(monkeypatch):
    import importlib

    from spatial.cancel import Cancelled, CancelToken, running

    module = importlib.import_module("spatial.change.decompose")
    token, calls = CancelToken(), []
    original = module._draws

    def draws(*args):
        calls.append(1)
        token.cancel("client gone")
        return original(*args)

    monkeypatch.setattr(module, "_draws", draws)
    monkeypatch.setattr(module, "BLOCK_CELLS", 8)  # one draw per block
    with running(token), pytest.raises(Cancelled):
        shapley_decomposition(R_DATA1, R_DATA2, n_boot=50)
    assert len(calls) == 2  # both dates of the first block, then it stopped
