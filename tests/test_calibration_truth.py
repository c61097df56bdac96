"""The calibration benchmark's truth computed apart from segmap (benchmarks/calibration_large.truth_by_hand) agrees
with pysal ``segregation`` and with segmap's evaluators: the coverage figures in
benchmarks/results/calibration_large.md compare intervals with a truth that does not come from the code under test
alone."""

import numpy as np
import pandas as pd
import pytest

from benchmarks.calibration_checks import truth_by_hand
from spatial.indices import get

sg = pytest.importorskip("segregation.singlegroup", reason="pysal segregation not installed")

PYSAL = {
    "dissimilarity": sg.Dissim,
    "gini": sg.Gini,
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
