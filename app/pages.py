"""Maps of a dataset as this caller may see it: HTML pages (with the app's tiles inside an offline page of a
large city), the numbers behind a view, and PNG/SVG images. The drawing itself is in :mod:`maps`."""

from __future__ import annotations

import json
import re
from functools import partial
from urllib.parse import urlencode

from fastapi import Depends, Header, Query

from maps.data import SCHEMES, VIEW_STATISTIC, VIEWS, view_data
from maps.i18n import LANGUAGES, negotiate, tr_for
from spatial.errors import ValidationError, problem
from spatial.lru import LRU

from .deps import Source
from .params import local_permutations
from .problems import ProblemError
from .settings import Settings
from .tileservice import Layer, TileService

_VIEWS = LRU(4)  # recent views of any source (a 1,000,000-area view holds ~150 MB)


def _at(at: str | None):
    if not at:
        return None
    try:
        lat, lon, zoom = (float(v) for v in at.split(","))
    except ValueError:
        raise ValidationError(problem("bad_parameter", "at must be 'lat,lon,zoom', e.g. at=32.7,-83.4,7")) from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180 and 0 <= zoom <= 22):
        raise ValidationError(problem("bad_parameter", "at is out of range: lat −90…90, lon −180…180, zoom 0…22"))
    return lat, lon, zoom


class MapParams:
    """Query parameters shared by every map endpoint."""

    def __init__(
        self,
        group: str | None = Query(None, description="group column (default: the first)"),
        view: str = Query("share", description="share, lq, lisa, hotspots or informal"),
        scheme: str = Query("quantiles", description="quantiles, natural_breaks or equal_interval"),
        k: int = Query(5, ge=3, le=7, description="number of classes"),
        permutations: int | None = Depends(local_permutations),
        seed: int = Query(0, ge=0, le=2**32 - 1),
        at: str | None = Query(None, description="map position: lat,lon,zoom"),
        tiles: str = Query("auto", description="auto (vector tiles above 3,000 areas), on or off"),
        lang: str | None = Query(None, max_length=35, description=f"page language: {', '.join(LANGUAGES)}"),
        accept_language: str | None = Header(None, include_in_schema=False),
    ):
        # Language of what the page shows (default: the browser's Accept-Language, else English)
        self.lang = negotiate(lang, accept_language)
        if tiles not in ("auto", "on", "off"):
            raise ValidationError(problem("bad_parameter", "tiles must be auto, on or off"))
        self.tiles = None if tiles == "auto" else tiles == "on"
        if view not in VIEWS:
            raise ValidationError(problem("bad_parameter", f"Unknown view {view!r}; choose from {list(VIEWS)}"))
        if scheme not in SCHEMES:
            raise ValidationError(
                problem("bad_parameter", f"Unknown classification {scheme!r}; choose from {list(SCHEMES)}")
            )
        self.group, self.view, self.scheme, self.k = group, view, scheme, k
        self.permutations, self.seed, self.at = permutations, seed, _at(at)


def pmtiles_url(dataset_id: str, group: str, view: str) -> str:
    """The PMTiles archive of a view: what replaces the offline HTML file of a city too large for one."""
    query = {"group": group, **({"statistic": VIEW_STATISTIC[view]} if view in VIEW_STATISTIC else {})}
    return f"/v1/datasets/{dataset_id}/export.pmtiles?{urlencode(query)}"


def check_download(dataset_id: str, info: dict, p: MapParams, settings: Settings) -> None:
    """Refuse an offline file too large to make, from the catalogue row alone: at 1,000,000 areas loading the
    dataset to count it took 4-10 s before the 422."""
    n, limit = int(info["n_areas"]), settings.max_offline_areas
    if n > limit:
        # Checked before anything is built: at 1,000,000 areas the file's tiles and statistics outlast the
        # compute timeout, and a browser can't open the page that would come out.
        group = p.group or info["groups"][0]
        raise ValidationError(
            problem(
                "too_many_areas",
                f"{n:,} areas are too many for one offline HTML file (limit {limit:,}, SEGMAP_MAX_OFFLINE_AREAS). "
                f"Instead: the areas with their numbers for GIS, /v1/datasets/{dataset_id}/download.parquet (or "
                f".fgb, .gpkg); the map as a PMTiles archive for any PMTiles viewer or static host, "
                f"{pmtiles_url(dataset_id, group, p.view)} (add maxzoom= for a smaller one; `segmap export` writes "
                f"it without the server's time limit); the PNG or SVG for a report, "
                f"/v1/datasets/{dataset_id}/map.png; or the live page, /maps/{dataset_id}.",
            )
        )
    if p.tiles is False and n > settings.max_download_areas:
        # Embedded GeoJSON of every area: ~40 MB and 30 s to build at 100,000 areas, and browsers hang on it.
        raise ValidationError(
            problem(
                "too_many_areas",
                f"{n:,} areas are too many to embed as GeoJSON in one offline HTML file (limit "
                f"{settings.max_download_areas:,}, SEGMAP_MAX_DOWNLOAD_AREAS): leave out tiles=off to embed vector "
                f"tiles instead, or use the PNG or SVG for a report, or /maps/{dataset_id}/data for the numbers.",
            )
        )


def render(src: Source, p: MapParams, settings: Settings, mode: str, tiles: TileService) -> bytes:
    """The page of ``mode`` (page, embed or download) as UTF-8 HTML."""
    from maps.views import PageOptions, render_page

    data = src.data
    group = p.group or data.groups[0]
    vector, embedded, zooms = p.tiles, None, None
    if mode == "download":
        vector = False
        if p.tiles or (p.tiles is None and data.n > settings.max_download_areas):
            # Too many areas to embed as GeoJSON: carry the app's own tiles for a few zooms instead.
            embedded, zooms = tiles.offline(src, Layer(group, VIEW_STATISTIC.get(p.view), p.permutations, p.seed))
            vector = True
    opts = PageOptions(
        dataset_id=src.id,
        group=group,
        view=p.view,
        scheme=p.scheme,
        k=p.k,
        at=p.at if mode == "download" else None,  # live pages: the script reads at= from the URL (one cached page)
        mode=mode,
        permutations=p.permutations,
        seed=p.seed,
        max_permutations=settings.max_permutations,
        basemap_url=None if mode == "download" else settings.basemap_url,
        basemap_attribution=settings.basemap_attribution,
        disclosure_threshold=src.threshold,
        vector_tiles=vector,
        embedded_tiles=embedded,
        embedded_zooms=zooms,
        lang=p.lang,
        pmtiles_url=pmtiles_url(src.id, group, p.view) if data.n > settings.max_offline_areas else None,
        view_data=partial(cached_view, src),
        canvas_areas=settings.canvas_areas,
    )
    page, _ = render_page(data, opts)
    return page.encode()


def cached_view(src: Source, data, group: str | None, view: str, **kw):
    """:func:`maps.data.view_data` of ``src``'s protected table, kept for the next page, area panel, data file or
    image of the same view (at 1,000,000 areas a LISA view takes tens of seconds; the panel asks at every click).
    The result is shared: read it, don't change it."""
    kw.pop("disclosure_threshold", None)  # the source's threshold is in its key; its table is already protected
    key = src.key("view", group or src.data.groups[0], view, tuple(sorted(kw.items())))
    return _VIEWS.get_or_make(key, lambda: view_data(data, group, view, **kw))


def _view(src: Source, p: MapParams, max_permutations: int):
    """The view ``p`` asks for, from the protected table."""
    kw = {"scheme": p.scheme, "k": p.k, "permutations": p.permutations, "seed": p.seed}
    return cached_view(src, src.data, p.group, p.view, max_permutations=max_permutations, **kw)


def view_file(src: Source, p: MapParams, format: str, max_permutations: int) -> tuple[bytes, str, str]:
    """The numbers behind a view as CSV or GeoJSON: body, media type and file name."""
    vd = _view(src, p, max_permutations)
    name = f"{src.id}-{vd.group}-{p.view}"
    if format == "csv":
        from spatial.export import csv_safe

        return csv_safe(vd.frame).to_csv(index=False).encode(), "text/csv; charset=utf-8", f"{name}.csv"
    from maps.views import geojson

    body = geojson(src.data, vd)
    body["segmap"] = {"view": vd.view, "group": vd.group, "legend": vd.legend, **vd.meta, "notes": vd.notes}
    return json.dumps(body).encode(), "application/geo+json", f"{name}.geojson"


def image(
    src: Source, p: MapParams, fmt: str, width: int, height: int, dpi: int, max_permutations: int
) -> tuple[bytes, str]:
    """A PNG or SVG of a view, and its alt text folded for an HTTP header (Latin-1, no control characters)."""
    from maps.static import render as render_image

    vd = _view(src, p, max_permutations)
    body, alt = render_image(src.data, vd, fmt, width=width, height=height, dpi=dpi, tr=tr_for(p.lang))
    # The alt text travels ASCII-folded in a header and in full inside the file; no CR/LF: h11 drops the connection.
    return body, re.sub(r"[\x00-\x1f\x7f]+", " ", alt).encode("ascii", "replace").decode()[:2000]


def area(src: Source, p: MapParams, area_id: str, max_permutations: int) -> bytes:
    """One area's panel (counts, share, LQ, the view's label and p before/after correction, neighbours) as JSON,
    for pages drawn from vector tiles, which carry no per-area data."""
    from maps.data import HOTSPOTS, LISA
    from maps.linked import area_info

    CLASS_NAMES = {**LISA, **HOTSPOTS}  # noqa: N806

    views = {}
    for view in dict.fromkeys([p.view, "lq"]):
        q = MapParams.__new__(MapParams)
        q.__dict__.update({**p.__dict__, "view": view})
        views[view] = _view(src, q, max_permutations)
    info = area_info(src.data, views, area_id)
    if info is None:
        raise ProblemError(404, "Not found", f"No area {area_id!r} in this dataset.", code="not_found")
    tr = tr_for(p.lang)
    from maps.text import label_map

    for view, vd in views.items():
        shown = label_map(vd, tr)
        row = info["views"][view]
        row["label"] = shown.get(row["label"], tr(row["label"]))
        row["uncorrected"] = tr(CLASS_NAMES[row["uncorrected"]][0]) if row["uncorrected"] else ""
    return json.dumps(info).encode()


def search(src: Source, q: str) -> bytes:
    from maps.linked import search as find

    return json.dumps(find(src.data, q)).encode()
