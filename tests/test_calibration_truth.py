"""The calibration benchmark's truth computed apart from segmap (benchmarks/calibration_checks.truth_by_hand) agrees
with pysal ``segregation`` (Gini: its dense pair sum) and with segmap's evaluators: the coverage figures in
benchmarks/results/calibration_large.md compare intervals with a truth that does not come from the code under test
alone."""

import numpy as np
import pandas as pd
import pytest

from benchmarks.calibration_checks import truth_by_hand
from spatial.indices import get

sg = pytest.importorskip("segregation.singlegroup", reason="pysal segregation not installed")


def gini_pairs(df, group, total):
    """Gini by its definition, the dense pair sum (pysal's Gini takes ~20 s here: a compile)."""
    t, x = df[total].to_numpy(), df[group].to_numpy()
    p, P = x / t, x.sum() / t.sum()
    stat = (t[:, None] * t[None, :] * np.abs(p[:, None] - p[None, :])).sum() / (2 * t.sum() ** 2 * P * (1 - P))
    return type("Gini", (), {"statistic": stat})


PYSAL = {
    "dissimilarity": sg.Dissim,
    "gini": gini_pairs,
    "isolation": sg.Isolation,
    "exposure": sg.Interaction,
    "atkinson": sg.Atkinson,
    "entropy": sg.Entropy,
}


@pytest.fixture(scope="module")
def city():
    rng = np.random.default_rng(11)
    t = rng.integers(10, 400, 400).astype(float)
    p = rng.beta(0.8, 3.2, 400)  # U-ish shares: far from the city share, as at ~20 people an area
    return t, p


@pytest.mark.parametrize("name", sorted(PYSAL))
def test_truth_by_hand_matches_pysal_and_segmap(city, name):
    t, p = city
    df = pd.DataFrame({"g": t * p, "t": t})
    expected = PYSAL[name](df, "g", "t").statistic
    assert truth_by_hand(name, t, p) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert float(get(name).evaluator(None)(t * p, t)) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_truth_by_hand_can_fail(city):
    t, p = city
    other = truth_by_hand("gini", t, np.clip(p * 1.1, 0, 1))
    assert other != pytest.approx(truth_by_hand("gini", t, p), rel=1e-6)


def _results_rows() -> list[list[str]]:
    from pathlib import Path

    md = Path(__file__).parent.parent / "benchmarks" / "results" / "calibration_large.md"
    return [[c.strip() for c in line.split("|")[1:-1]] for line in md.read_text().splitlines() if line.startswith("| ")]


def test_every_index_said_to_be_measured_has_its_coverage_in_the_results():
    """An index drops `interval_may_undercover` (compute.MEASURED) only with measured coverage at 10,000 and
    100,000 areas × 200 people on the default path: at least 0.93, binomial SE at most 3.5 points."""
    from spatial.indices import compute

    seen: dict = {}
    for row in _results_rows():
        if len(row) < 8 or row[4] != "auto" or row[3] != "200" or "(" in row[0]:
            continue
        coverage, se = (float(v.strip("* ")) for v in row[7].split("±"))
        seen[(row[0], row[2])] = (coverage, se, int(row[6]))
    for name in compute.MEASURED:
        for areas in ("10,000", "100,000"):
            coverage, se, reps = seen[(name, areas)]
            assert coverage >= 0.93 and se <= 0.035, (name, areas, coverage, se, reps)
