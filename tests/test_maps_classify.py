"""mapclassify is imported without compiling its Fisher-Jenks kernel (2.5-5 s of numba in every worker's start,
for a kernel segmap never calls); numba's njit is left as it was, and the kernel still works when called."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, numba
eager = numba.njit
import maps.data
import mapclassify, mapclassify.classifiers as c
before = list(c._fisher_jenks_means.signatures)
bins = mapclassify.FisherJenks([1.0, 2.0, 2.5, 8.0, 9.0, 9.5, 20.0], k=3).bins.tolist()
print(json.dumps({"compiled_at_import": before, "njit_restored": numba.njit is eager, "bins": bins,
                  "compiled_after_call": len(c._fisher_jenks_means.signatures)}))
"""


def test_fisher_jenks_compiles_on_first_call_not_at_import():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["compiled_at_import"] == []  # mapclassify alone compiles it when imported
    assert got["njit_restored"] is True
    assert got["bins"] == [2.5, 9.5, 20.0]  # by hand: {1, 2, 2.5}, {8, 9, 9.5}, {20}
    assert got["compiled_after_call"] == 1
