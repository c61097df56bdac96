"""Downloads of a result as a file (GeoPackage, GeoParquet, FlatGeobuf, CSV), from the caller's protected table.

Each kind of result is one function that makes its per-area frame (in the dataset's CRS, withheld areas with
null counts and the label ``suppressed``); :func:`spatial.export.table_bytes` writes it. A new kind of result
(e.g. a harmonised series) is one more builder in :data:`BUILDERS` and one route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import geopandas as gpd

from spatial.disclosure import protect_frame
from spatial.export import FORMATS, local_frame, table_bytes

from .deps import Source
from .params import LocalQuery

Format = Literal["gpkg", "parquet", "fgb", "csv"]
FILES = {200: {"content": {m: {} for m in ("application/geopackage+sqlite3", "application/vnd.apache.parquet",
                                            "application/flatgeobuf", "text/csv")}}}  # fmt: skip


def dataset_frame(src: Source) -> gpd.GeoDataFrame:
    """Every area with its declared counts and each group's share, as published (null where withheld)."""
    frame = src.data.areas.copy()
    for g in src.data.groups:
        frame[f"{g}_share"] = src.data.share(g)
    return frame


def local_result_frame(q: LocalQuery) -> gpd.GeoDataFrame:
    """One local statistic per area, the same numbers as GET …/local with the same parameters."""
    from spatial.local import local_statistic  # the statistics libraries load only when a local result is asked for

    src, opts = q.src, q.options
    res = local_statistic(
        src.dataset,
        opts["group"],
        opts["statistic"],
        max_permutations=q.max_permutations,
        **{k: v for k, v in opts.items() if k not in ("group", "statistic")},
    )
    frame = protect_frame(local_frame(src.dataset, res, wgs84=False), src.data)
    frame["label"] = frame["label"].astype(str)
    return frame


BUILDERS: dict[str, Callable[..., gpd.GeoDataFrame]] = {"dataset": dataset_frame, "local": local_result_frame}


def download(kind: str, fmt: str, layer: str, *args) -> bytes:
    """The result of ``kind`` (a key of :data:`BUILDERS`, called with ``args``) as one ``fmt`` file."""
    return table_bytes(BUILDERS[kind](*args), fmt, layer)


def media_type(fmt: str) -> str:
    return FORMATS[fmt][1]
