"""Features for OGC API – Features: every area of a dataset, or one local statistic per area, in CRS84.

A collection is a dataset (``{id}``) or a local result of one of its groups (``{id}~lisa~{group}``). Its
features are built once per version and caller (off the event loop), kept in a bounded cache, and paged
by slicing. Every value comes from the caller's protected table (:class:`spatial.disclosure.PublicData`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import geopandas as gpd
import shapely

from spatial.disclosure import PublicData, protect_frame
from spatial.errors import ValidationError, problem
from spatial.lru import LRU

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


def features(data: PublicData, statistic: str | None, group: str | None) -> gpd.GeoDataFrame:
    """Every area of the protected table in CRS84, with one local statistic when asked for."""
    if statistic is None:
        return data.areas.to_crs(4326)
    from spatial.export import local_frame
    from spatial.local import local_statistic

    res = local_statistic(data.dataset, group, statistic, permutations=999, seed=0)
    frame = protect_frame(local_frame(data.dataset, res), data)
    frame["label"] = frame["label"].astype(str)
    return frame


class Features:
    """The features of recently asked collections (a few MB each), computed on the heavy pool."""

    def __init__(self, heavy: HeavyWork, entries: int = 8):
        self.heavy = heavy
        self._frames = LRU(entries)

    async def page(self, src: Source, collection: CollectionId, bbox: tuple | None, limit: int, offset: int) -> Page:
        key = src.key(collection.statistic, collection.group)
        frame = self._frames.get(key)
        if frame is None:
            frame = await self.heavy.run(features, src.data, collection.statistic, collection.group, key=key)
            self._frames.put(key, frame)
        if bbox is not None:
            frame = frame[frame.intersects(shapely.box(*bbox))]
        page = frame.iloc[offset : offset + limit]
        body = json.loads(page.to_json(drop_id=True, na="null"))
        for feature, fid in zip(body["features"], page["id"], strict=True):
            feature["id"] = str(fid)
        return Page(body["features"], len(frame))
