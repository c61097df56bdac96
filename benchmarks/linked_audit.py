"""Cost of the linked-disclosure audit (spatial/disclosure_linked.py): a fine grid of N areas (5% withheld) is
published; a coarse grid (4 fine cells each) of the same date is uploaded, then the other way round.

    flock /tmp/team/bench.lock .venv/bin/python benchmarks/linked_audit.py 10000 100000
"""

from __future__ import annotations

import sys
import time

import numpy as np
import shapely

from spatial.disclosure import small_cells
from spatial.disclosure_linked import Layer, audit


def grid(side: int, size: float) -> np.ndarray:
    x, y = np.meshgrid(np.arange(side) * size, np.arange(side) * size)
    return shapely.box(x.ravel(), y.ravel(), x.ravel() + size, y.ravel() + size)


def layers(n: int, seed: int = 0):
    side = int(round(np.sqrt(n) / 2)) * 2
    rng = np.random.default_rng(seed)
    pop = rng.integers(50, 900, side * side).astype(float)
    grp = np.where(rng.random(side * side) < 0.05, rng.integers(1, 10, side * side), np.rint(pop * 0.3))
    fine_counts = np.column_stack([pop, grp])
    cols = ("__total__", "grp")
    fine = Layer("fine", grid(side, 100.0), small_cells(fine_counts, 10).any(axis=1), fine_counts, 10, cols)
    # coarse counts: sums of the fine ones (row-major 2×2 blocks)
    blocks = fine_counts.reshape(side // 2, 2, side // 2, 2, 2).sum(axis=(1, 3)).reshape(-1, 2)
    coarse = Layer("coarse", grid(side // 2, 200.0), small_cells(blocks, 10).any(axis=1), blocks, 10, cols)
    return fine, coarse


def datasets(fine: Layer, coarse: Layer):
    """The two grids as stored datasets (EPSG:3035 grids placed in Europe)."""
    import geopandas as gpd

    from spatial.dataset import Metadata, validate

    out = []
    for layer, date in ((fine, "2020"), (coarse, "2020")):
        geoms = shapely.transform(layer.geometry, lambda xy: xy + [4_300_000, 3_200_000])
        gdf = gpd.GeoDataFrame(
            {
                "id": [f"{layer.name}{i}" for i in range(len(geoms))],
                "pop": layer.counts[:, 0],
                "grp": layer.counts[:, 1],
            },
            geometry=geoms,
            crs=3035,
        )
        out.append((validate(gdf, id_col="id", groups=["grp"], total="pop", meta=Metadata(name=layer.name)), date))
    return out


def hook(n: int) -> tuple[float, float, int]:
    """app/linked.py end to end: the stored fine table read as published, the coarse upload audited; and the
    check an upload of another year costs (no dataset shares its date)."""
    import tempfile
    from pathlib import Path

    from app.linked import _rule
    from app.registry import Registry
    from app.settings import Settings

    (fine, date), (coarse, _) = datasets(*layers(n))
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        registry = Registry(Path(tmp))
        registry.put("fine", fine, date=date)
        t = time.perf_counter()
        rule = _rule(registry, settings, coarse, None, "2020")
        linked = time.perf_counter() - t
        t = time.perf_counter()
        assert _rule(registry, settings, coarse, None, "2021") is None
        skip = time.perf_counter() - t
    return linked, skip, len(rule["withhold"])


def main(sizes: list[int]) -> None:
    print("| fine areas | coarse areas | withheld fine | direction | pairs | audit s | secondary withheld |")
    print("|---:|---:|---:|---|---:|---:|---:|")
    for n in sizes:
        fine, coarse = layers(n)
        for new, old, label in ((coarse, fine, "coarse after fine"), (fine, coarse, "fine after coarse")):
            t = time.perf_counter()
            result = audit(new, [old])
            dt = time.perf_counter() - t
            print(
                f"| {len(fine.geometry):,} | {len(coarse.geometry):,} | {int(fine.hidden.sum()):,} | {label} | "
                f"{result.stats['pairs']:,} | {dt:.2f} | {int(result.withhold.sum()):,} |",
                flush=True,
            )

    print()
    print("| fine areas | hook s (stored fine table, coarse upload) | secondary withheld | skip s (other year) |")
    print("|---:|---:|---:|---:|")
    for n in sizes:
        linked, skip, withheld = hook(n)
        print(f"| {n:,} | {linked:.2f} | {withheld:,} | {skip:.3f} |", flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10_000, 100_000])
