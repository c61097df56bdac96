"""`segmap local` as a real process."""

from __future__ import annotations

import csv
import io
import json


def test_local_csv_on_stdout_and_geojson_file(segmap, georgia_args, tmp_path):
    base = ["local", *georgia_args, "--group", "black", "--permutations", "999", "--seed", "1"]
    out = segmap(*base)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 159 and {"high_high", "low_low"} & {r["label"] for r in rows}
    assert "lisa of black" in out.stderr and "fdr" in out.stderr
    target = tmp_path / "gi.geojson"
    out = segmap(*base, "--statistic", "gi_star", "-o", target)
    assert out.returncode == 0, out.stderr
    features = json.loads(target.read_text())["features"]
    assert len(features) == 159 and {f["properties"]["label"] for f in features} <= {
        "hot_spot",
        "cold_spot",
        "not_significant",
    }
    bad = segmap(*base, "--alpha", "7")
    assert bad.returncode == 2 and bad.stdout == "" and "alpha" in bad.stderr
