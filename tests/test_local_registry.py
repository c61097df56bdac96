"""The local-statistics registry: names and aliases offered, references cited, and a new statistic gets the
shared prologue (populated areas only, islands, permutations chosen) without touching ``local_statistic``."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from spatial.dataset import validate
from spatial.errors import ValidationError
from spatial.local import ALIASES, STATISTICS, get, local_statistic, register
from spatial.local.registry import REGISTRY


def test_names_aliases_and_references():
    assert STATISTICS == ("lisa", "gi_star", "lq", "entropy", "bivariate_lisa")
    assert ALIASES == {
        "moran": "lisa",
        "local_moran": "lisa",
        "getis_ord": "gi_star",
        "location_quotient": "lq",
        "bivariate_moran": "bivariate_lisa",
    }
    for name in STATISTICS:
        spec = get(name)
        assert spec.reference and spec.func.__doc__, name
    assert get("getis_ord").name == "gi_star"
    with pytest.raises(ValidationError, match="choose from \\['lisa', 'gi_star', 'lq', 'entropy', 'bivariate_lisa'\\]"):
        get("moran_i")


def test_a_registered_statistic_gets_the_shared_prologue():
    # 4 × 4 grid of cells, one without people and one far away (an island).
    geoms = [box(i, j, i + 1, j + 1) for i in range(4) for j in range(4)] + [box(50, 50, 51, 51)]
    total = [100] * 17
    total[5] = 0
    group = [10 * (i % 5) if t else 0 for i, t in enumerate(total)]
    gdf = gpd.GeoDataFrame(
        {"id": [f"a{i}" for i in range(17)], "total": total, "g": group}, geometry=geoms, crs="EPSG:32633"
    )
    ds = validate(gdf, id_col="id", groups=["g"], total="total")
    seen = {}

    @register("probe", reference="test only")
    def probe(c):
        """Records what the prologue handed over."""
        seen.update(n=c.n, islands=int(c.islands.sum()), permutations=c.permutations, flat=c.flat)
        return c.result(values=c.full(c.ys), labels=c.full(np.full(c.n, "x", dtype=object), "no_population"))

    try:
        res = local_statistic(ds, "g", "probe", seed=1)
        assert seen == {"n": 16, "islands": 1, "permutations": 999, "flat": False}  # 999: the floor, 2/1000 <= 0.05/15
        capped = local_statistic(ds, "g", "probe", seed=1, max_permutations=500)
    finally:
        del REGISTRY["probe"]
    assert res.labels[5] == "no_population" and np.isnan(res.values[5])
    assert [n.code for n in res.notes] == ["no_population", "islands"]
    assert res.weights["kind"] == "queen"
    # 16 populated areas, one island: a family of 15, whose first FDR threshold 0.05/15 is below 2/501.
    assert seen["permutations"] == 500 and capped.notes[-1].code == "permutations_too_few"
    assert "over 15 areas (alpha/15)" in capped.notes[-1].message
