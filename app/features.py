"""Features for OGC API – Features: every area of a dataset, or one local statistic per area, in CRS84.

A collection is a dataset (``{id}``) or a local result of one of its groups (``{id}~lisa~{group}``). Its
features are built once per version and caller (off the event loop), kept in a bounded cache, and paged
by slicing. Every value comes from the caller's protected table (:class:`spatial.disclosure.PublicData`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely

from spatial.disclosure import PublicData, protect_frame
from spatial.errors import ValidationError, problem
from spatial.lru import LRU

from . import cql
from .deps import Source
from .http import HeavyWork

LOCAL = ("lisa", "gi_star")  # local results published as collections: "{dataset}~{statistic}~{group}"
SEP = "~"


@dataclass(frozen=True)
class CollectionId:
    dataset: str
    statistic: str | None = None
    group: str | None = None

    @classmethod
    def parse(cls, collection_id: str) -> CollectionId | None:
        parts = collection_id.split(SEP)
        if len(parts) == 3 and parts[1] in LOCAL:
            return cls(*parts)
        return cls(collection_id) if len(parts) == 1 else None


@dataclass
class Page:
    features: list[dict]
    matched: int


def parse_bbox(bbox: str | None) -> tuple[float, float, float, float] | None:
    if not bbox:
        return None
    try:
        box = tuple(float(v) for v in bbox.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or not (box[0] <= box[2] and box[1] <= box[3]):  # NaN fails too
        raise ValidationError(problem("bad_parameter", "bbox must be minLon,minLat,maxLon,maxLat with min ≤ max"))
    return box


def features(
    data: PublicData, statistic: str | None, group: str | None, max_permutations: int = 9999
) -> gpd.GeoDataFrame:
    """Every area of the protected table in CRS84, with each group's share (``{group}_share``, as in the vector
    tiles), or one local statistic of one group when asked for (permutations as GET …/local chooses them)."""
    if statistic is None:
        frame = data.areas.to_crs(4326)
        for g in data.groups:
            frame[f"{g}_share"] = data.share(g)  # NaN where withheld: from the protected table only
        return frame
    from spatial.export import local_frame
    from spatial.local import local_statistic

    res = local_statistic(data.dataset, group, statistic, permutations=None, seed=0, max_permutations=max_permutations)
    frame = protect_frame(local_frame(data.dataset, res, wgs84=False), data).to_crs(4326)
    frame["label"] = frame["label"].astype(str)
    if "share" in frame.columns:  # the same name as in the dataset's collection and the tiles
        frame = frame.rename(columns={"share": f"{group}_share"})
    for col in frame.columns:
        flags = frame[col].map(lambda v: isinstance(v, bool | np.bool_))
        if frame[col].dtype == object and flags.any() and (flags | frame[col].isna()).all():
            frame[col] = frame[col].astype("boolean")  # True/False with nulls where withheld
    return frame


@dataclass(frozen=True)
class Selection:
    """OGC API – Features Part 3 on one request: a parsed CQL2 filter, sort keys and the properties to return."""

    filter: dict | bool | None = None
    sortby: str | None = None
    properties: str | None = None


def select_page(frame: gpd.GeoDataFrame, bbox, limit: int, offset: int, sel: Selection) -> Page:
    """Filter, sort and slice one collection's frame; the features as GeoJSON dicts (with ids as text)."""
    known = cql.fields(frame)
    keys = cql.parse_sortby(sel.sortby, known)
    names = cql.parse_properties(sel.properties, known)
    if bbox is not None:
        frame = frame[frame.intersects(shapely.box(*bbox))]
    if sel.filter is not None:
        frame = frame[cql.select(frame, sel.filter, known)]
    frame = cql.sort(frame, keys)
    page = frame.iloc[offset : offset + limit]
    ids = page["id"].astype(str).tolist()
    if names is not None:
        page = page[[c for c in names if c != "id"] + ["id", "geometry"]]
    body = json.loads(page.to_json(drop_id=True, na="null"))
    for feature, fid in zip(body["features"], ids, strict=True):
        feature["id"] = fid
        if names is not None and "id" not in names:
            feature["properties"].pop("id", None)
    return Page(body["features"], len(frame))


class Features:
    """The features of recently asked collections (a few MB each), computed on the heavy pool."""

    def __init__(self, heavy: HeavyWork, entries: int = 8, max_permutations: int = 9999):
        self.heavy, self.max_permutations = heavy, max_permutations
        self._frames = LRU(entries)

    async def frame(self, src: Source, collection: CollectionId) -> gpd.GeoDataFrame:
        key = src.key(collection.statistic, collection.group)
        frame = self._frames.get(key)
        if frame is None:
            frame = await self.heavy.run(
                features, src.data, collection.statistic, collection.group, self.max_permutations, key=key
            )
            self._frames.put(key, frame)
        return frame

    async def page(
        self, src: Source, collection: CollectionId, bbox: tuple | None, limit: int, offset: int, sel: Selection
    ) -> Page:
        frame = await self.frame(src, collection)
        if sel.filter is None and not sel.sortby:  # a slice, as before filters: no queue for plain paging
            return select_page(frame, bbox, limit, offset, sel)
        return await self.heavy.run(select_page, frame, bbox, limit, offset, sel)

    async def queryables(self, src: Source, collection: CollectionId) -> dict[str, str]:
        return cql.fields(await self.frame(src, collection))
