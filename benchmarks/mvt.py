"""MVT encoding of one polygon layer: segmap's vectorised encoder vs mapbox-vector-tile's."""

from __future__ import annotations

import mapbox_vector_tile
import numpy as np
import shapely

from app.mvt import encode_polygons
from benchmarks.common import PAIR_SPAN, QUICK, alternate, header, ratio, spread, table, versions, write

OPTIONS = {"extents": 4096, "y_coord_down": True, "check_winding_order": True}


def grid_tile(n: int, seed: int = 0):
    """n squares on an integer grid in tile units, with 8 mixed properties (some NaN / None)."""
    side = int(np.ceil(np.sqrt(n)))
    cell = max(4096 // side, 2)
    i, j = np.divmod(np.arange(n), side)
    geoms = shapely.box(i * cell, j * cell, (i + 1) * cell, (j + 1) * cell)
    rng = np.random.default_rng(seed)
    share = rng.random(n).round(4)
    share[rng.random(n) < 0.1] = np.nan
    names = np.array([f"area {k}" for k in range(n)], dtype=object)
    names[rng.random(n) < 0.05] = None
    cols = {
        "id": np.arange(n),
        "total": rng.integers(50, 1500, n),
        "migrants": rng.integers(0, 50, n),
        "share": share,
        "z": rng.normal(size=n).round(2),
        "delta": rng.integers(-20, 20, n),
        "name": names,
        "band": np.array(["low", "mid", "high"], dtype=object)[rng.integers(0, 3, n)],
    }
    return geoms, cols


def features(geoms, cols):
    names = list(cols)
    rows = zip(*(c.tolist() for c in cols.values()))
    return [
        {"geometry": g, "properties": {k: v for k, v in zip(names, r) if v is not None and v == v}}
        for g, r in zip(geoms, rows)
    ]


def rounds(n: int, quick: bool) -> int:
    """Alternating rounds: ~15 s of mapbox-vector-tile's encode at 5,000 features, 3-5 of its 13 s at 100,000."""
    return (25 if quick else 40) if n <= 10_000 else (3 if quick else 5)


def encode_times(n: int, quick: bool) -> dict:
    """Both encoders on ``n`` features, alternating: seconds per encode of each side, segmap's encodes per sample,
    and both tiles' sizes (after checking they decode to the same ``n`` features)."""
    geoms, cols = grid_tile(n)
    feats = features(geoms, cols)  # building the dicts is not counted against mapbox-vector-tile
    ours = encode_polygons(geoms, cols)
    theirs = mapbox_vector_tile.encode([{"name": "areas", "features": feats}], default_options=OPTIONS)
    n_ours = len(mapbox_vector_tile.decode(ours)["areas"]["features"])
    n_theirs = len(mapbox_vector_tile.decode(theirs)["areas"]["features"])
    assert n_ours == n_theirs == n, (n_ours, n_theirs, n)
    times = alternate(
        {
            "ours": lambda: encode_polygons(geoms, cols),
            "ref": lambda: mapbox_vector_tile.encode([{"name": "areas", "features": feats}], default_options=OPTIONS),
        },
        rounds(n, quick),
        warm=("ours",),  # both encoded once above
        span=min(PAIR_SPAN, 0.1 * n / 1000),  # about as long as mapbox-vector-tile's encode (~0.11 s / 1,000)
        settle_each=n > 10_000,  # hundreds of MB of Python objects a call at 100,000 features
    )
    return {**times, "number": times.number["ours"], "kb": [len(ours) / 1024, len(theirs) / 1024]}


def main(quick: bool = QUICK) -> None:
    rows = []
    for n in (5_000, 100_000):
        times = encode_times(n, quick)
        rows.append(
            {
                "features": f"{n:,}",
                "segmap": spread(times["ours"]),
                "mapbox-vector-tile": spread(times["ref"]),
                "speed-up (range of pairs)": ratio(times["ref"], times["ours"], key=f"encode {n:,} features"),
                "segmap encodes per sample": times["number"],
                "segmap KB": times["kb"][0],
                "mapbox-vector-tile KB": times["kb"][1],
            }
        )
    anchors = (
        f"{versions('mapbox-vector-tile', 'shapely', 'numpy')}; `mapbox_vector_tile.encode` with extent 4096, "
        "y down and winding checks, given ready-made feature dicts (building them is not timed). Each side encoded "
        f"once untimed (the tiles are decoded and must hold the same {rows[0]['features']} / "
        f"{rows[-1]['features']} features), then alternating rounds, one sample a side each ({rounds(5_000, quick)} "
        f"at 5,000 features, {rounds(100_000, quick)} at 100,000, memory settled before each sample), the speed-up "
        "the mean of the middle 80 % of the rounds' ratios; "
        "segmap's encode repeated within its sample until the sample spans about as long as mapbox-vector-tile's "
        f"encode (at most {PAIR_SPAN:.0f} s; time per encode shown)."
    )
    write(
        "mvt",
        header("MVT encoding: one layer of square polygons with 8 properties (ints, floats, strings, NaN)", anchors)
        + table(rows),
    )


if __name__ == "__main__":
    main()
