"""Shared helpers: a synthetic grid city, timing, peak memory, result tables."""

from __future__ import annotations

import datetime as dt
import os
import platform
import time
import tracemalloc
from pathlib import Path

import geopandas as gpd
import numpy as np
from shapely import box

from spatial.dataset import validate

RESULTS = Path(__file__).parent / "results"


def grid_city(n_areas: int, cell: float = 200.0, seed: int = 0):
    """A square grid of cells with a migrant cluster in one corner (EPSG:32633, metres)."""
    side = int(np.ceil(np.sqrt(n_areas)))
    rng = np.random.default_rng(seed)
    i, j = np.divmod(np.arange(n_areas), side)
    x0, y0 = 500_000.0, 5_000_000.0
    geoms = box(x0 + i * cell, y0 + j * cell, x0 + (i + 1) * cell, y0 + (j + 1) * cell)
    total = rng.integers(50, 1500, n_areas)
    p = np.where((i < side / 3) & (j < side / 3), 0.35, 0.08)
    migrants = rng.binomial(total, p)
    gdf = gpd.GeoDataFrame(
        {"id": [f"a{k}" for k in range(n_areas)], "total": total, "migrants": migrants},
        geometry=geoms,
        crs="EPSG:32633",
    )
    return validate(gdf, id_col="id", groups=["migrants"], total="total")


def timed(fn, *args, **kwargs):
    """(result, seconds, peak MB of Python allocations) of one call."""
    tracemalloc.start()
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, seconds, peak


def header(title: str) -> str:
    return (
        f"# {title}\n\nMeasured {dt.date.today()} on {platform.machine()} with {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; other work may have been running. Peak memory is Python's "
        "(tracemalloc), numpy buffers included.\n\n"
    )


def table(rows: list[dict]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    return "\n".join(lines) + "\n"


def write(topic: str, text: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{topic}.md").write_text(text)
    print(text)


ORDER = ["indices", "local", "mvt", "tiles", "maps", "informal", "load", "calibration"]
INTRO = """# Benchmarks

Speed is measured here, not in timed tests. Each module runs segmap and its anchor library (pysal
`segregation`, esda, mapbox-vector-tile, folium) in the same process run and prints ratios; servers
listen on 127.0.0.1 only and are stopped by process id; load tests are bounded in time.

```sh
make bench                                 # all of them (about 15 minutes on 2 cores, plus ~40 for the calibration)
.venv/bin/python -m benchmarks tiles load  # some of them
```

Each run rewrites `results/<topic>.md` and this file from them. The machine: 2 cores, 24 GB, Python 3.11,
shared with other work (numbers are noisy by ±20 %).

## Targets from the issues and where they stand

{targets}"""


def assemble_readme(targets: str) -> None:
    """benchmarks/README.md = the introduction, the targets table and every results file, in order."""
    parts = [INTRO.format(targets=targets)]
    for topic in ORDER:
        path = RESULTS / f"{topic}.md"
        if path.exists():
            parts.append("#" + path.read_text().strip().replace("\n# ", "\n## ") + "\n")
    (RESULTS.parent / "README.md").write_text("\n".join(parts))
