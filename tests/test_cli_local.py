"""`segmap local` as a real process."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

from conftest import ROOT


def test_local_csv_on_stdout_and_geojson_file(georgia_paths, tmp_path):
    base = [
        sys.executable,
        "-m",
        "app.cli",
        "local",
        str(georgia_paths["boundaries"]),
        "--counts",
        str(georgia_paths["counts"]),
        "--key",
        "area_key",
        "--total",
        "total_population",
        "--group",
        "black",
        "--permutations",
        "999",
        "--seed",
        "1",
    ]
    out = subprocess.run(base, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 159 and {"high_high", "low_low"} & {r["label"] for r in rows}
    assert "lisa of black" in out.stderr and "fdr" in out.stderr
    target = tmp_path / "gi.geojson"
    out = subprocess.run(
        base + ["--statistic", "gi_star", "-o", str(target)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    features = json.loads(target.read_text())["features"]
    assert len(features) == 159 and {f["properties"]["label"] for f in features} <= {
        "hot_spot",
        "cold_spot",
        "not_significant",
    }
    bad = subprocess.run(base + ["--alpha", "7"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and bad.stdout == "" and "alpha" in bad.stderr
