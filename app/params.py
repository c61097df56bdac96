"""Typed request parameters: each is read and checked here, once, before a route does any work.

Limits come from the settings (the permutation cap: :func:`_capped`, and LISA's global test in LocalQuery).
Parameters that name columns are checked against the dataset's declared ones, so a route receives only what it
may use.
"""

from __future__ import annotations

import math

from fastapi import Depends, Path, Query

from spatial.errors import ValidationError, problem
from spatial.local.prologue import GLOBAL_TESTS
from spatial.local.statistics import check_permutations

from .deps import Source, get_registry, get_settings, get_source, is_owner, load_source
from .features import CollectionId, parse_bbox
from .problems import ProblemError, not_found
from .registry import Registry
from .settings import Settings
from .tiles import MAX_ZOOM, valid_tile
from .tileservice import Layer

SEED = "random seed (default 0, so a URL always gives the same numbers)"


def _capped(permutations: int | None, settings: Settings) -> int | None:
    if permutations is not None and permutations > settings.max_permutations:
        raise ValidationError(
            problem(
                "bad_parameter",
                f"permutations is limited to {settings.max_permutations} (SEGMAP_MAX_PERMUTATIONS); ask for fewer",
            )
        )
    return permutations


def simulations(
    permutations: int = Query(0, ge=0, description="simulations for p-values and intervals"),
    settings: Settings = Depends(get_settings),
) -> int:
    return _capped(permutations, settings)


def local_permutations(
    permutations: int | None = Query(
        None, ge=0, description="default: enough for the correction over these areas, at most the server's limit"
    ),
    settings: Settings = Depends(get_settings),
) -> int | None:
    return _capped(permutations, settings)


def _distances(multiscalar: str | None) -> list[float] | None:
    if not multiscalar:
        return None
    try:
        distances = [float(v) for v in multiscalar.split(",") if v.strip()]
    except ValueError:
        raise ValidationError(
            problem("bad_parameter", "multiscalar takes metres separated by commas, e.g. 500,1000,2000,4000")
        ) from None
    if not distances or not all(math.isfinite(d) and d > 0 for d in distances):
        raise ValidationError(
            problem(
                "bad_parameter",
                f"multiscalar distances must be finite positive metres, e.g. 500,1000,2000,4000; got {multiscalar!r}",
            )
        )
    return distances


def _region(src: Source, region: str | None) -> str | None:
    ds = src.dataset
    if region is not None and region != ds.region_col:
        raise ValidationError(
            problem(
                "bad_column_role",
                f"region {region!r} is not this dataset's declared region column ({ds.region_col!r})"
                if ds.region_col
                else f"region {region!r}: this dataset declared no region column at upload",
            )
        )
    return region


class IndicesQuery:
    """GET …/indices: the names and fields of `segmap indices --format json`."""

    def __init__(
        self,
        group: list[str] | None = Query(None, description="group column(s); two-group indices use the first"),
        groups: str | None = Query(
            None, description="comma-separated group columns, the focal one first (as --groups)"
        ),
        total: str | None = Query(None, description="total column (default: the dataset's)"),
        index: list[str] | None = Query(None, description="index names (default: all aspatial)"),
        permutations: int = Depends(simulations),
        seed: int = Query(0, ge=0, le=2**32 - 1, description=SEED),
        null: str | None = Query(None, description="random_allocation or permutation"),
        region: str | None = Query(None, description="region column to decompose mutual_information"),
        compare_to: str | None = Query(None, description="id of a second dataset for a two-sample comparison"),
        compare_group: str | None = Query(None, description="a second group of this dataset to compare with"),
        multiscalar: str | None = Query(
            None,
            description="distances in metres, e.g. 500,1000,2000,4000: adds each "
            "aspatial two-group index's multiscalar profile",
        ),
        src: Source = Depends(get_source),
        registry: Registry = Depends(get_registry),
        settings: Settings = Depends(get_settings),
    ):
        self.distances = _distances(multiscalar)
        self.other = None
        if compare_to:
            self.other = load_source(registry, settings, compare_to, src.owner)
            if self.other is None:
                raise not_found("dataset", compare_to, "compare_to must name a registered dataset (GET /v1/datasets).")
        ds = src.dataset  # the protected table: public callers never get indices of true counts
        named = [*(group or []), *(g.strip() for g in (groups or "").split(",") if g.strip())]
        self.groups = list(dict.fromkeys(named or [ds.groups[0]]))
        # Only declared columns are public: a group, total or region the upload did not declare is refused by name.
        for g in self.groups:
            ds.require_declared(g, "group")
        if total is not None:
            ds.require_declared(total, "total", total=True)
        if compare_group is not None:
            ds.require_declared(compare_group, "compare_group")
        self.region = _region(src, region)
        self.src, self.total, self.index, self.permutations, self.seed = src, total, index, permutations, seed
        self.null, self.compare_group = null, compare_group


class LocalQuery:
    """GET …/local: the fields of `segmap local`, as GeoJSON or CSV."""

    def __init__(
        self,
        group: str | None = Query(None, description="group column (default: the dataset's first group)"),
        statistic: str = Query("lisa", description="lisa, gi_star, lq, entropy or bivariate_lisa"),
        total: str | None = None,
        weights: str = Query("queen", description="queen, rook, knn, distance or kernel"),
        k: int | None = Query(None, ge=1, le=100),
        distance: float | None = Query(None, gt=0),
        permutations: int | None = Depends(local_permutations),
        seed: int = Query(0, ge=0, le=2**32 - 1),
        alpha: float = Query(0.05, gt=0, lt=1),
        correction: str = Query("fdr", description="fdr, bonferroni or none"),
        other: str | None = None,
        smoothing: str | None = Query(None, description="eb: empirical Bayes"),
        global_test: str = Query(
            "randomisation", description="lisa's global Moran's I: randomisation (analytic) or permutation (999)"
        ),
        format: str = Query("geojson", description="geojson or csv"),
        src: Source = Depends(get_source),
        settings: Settings = Depends(get_settings),
    ):
        if format not in ("geojson", "csv"):
            raise ValidationError(problem("bad_parameter", "format must be geojson or csv"))
        if global_test not in GLOBAL_TESTS:
            raise ValidationError(problem("bad_parameter", f"global_test must be one of {', '.join(GLOBAL_TESTS)}"))
        check_permutations(statistic, permutations, global_test, settings.max_permutations, "SEGMAP_MAX_PERMUTATIONS")
        ds = src.dataset  # the protected table: withheld areas are neither tested nor anybody's neighbour
        group = group or ds.groups[0]
        # Only declared columns are public: anything else is refused by name and role, never computed on.
        ds.require_declared(group, "group")
        if total is not None:
            ds.require_declared(total, "total", total=True)
        if other is not None:
            ds.require_declared(other, "other")
        self.src, self.format, self.max_permutations = src, format, settings.max_permutations
        self.options = {
            "group": group,
            "statistic": statistic,
            "total": total,
            "weights": weights,
            "k": k,
            "distance": distance,
            "permutations": permutations,
            "seed": seed,
            "alpha": alpha,
            "correction": correction,
            "other": other,
            "smoothing": smoothing,
            "global_test": global_test,
        }


def tile_address(z: int = Path(..., ge=0, le=MAX_ZOOM), x: int = Path(..., ge=0), y: int = Path(..., ge=0)) -> tuple:
    if not valid_tile(z, x, y):
        raise ProblemError(
            404,
            "Tile outside the grid",
            f"At zoom {z}, x and y run from 0 to {2**z - 1}; got x={x}, y={y}.",
            code="tile_outside_grid",
        )
    return z, x, y


def tile_layer(
    group: str | None = Query(None, description="group whose local statistic to add"),
    statistic: str | None = Query(None, description="lisa, gi_star, lq … (adds value, p_value, label)"),
    permutations: int | None = Depends(local_permutations),
    seed: int = Query(0, ge=0, le=2**32 - 1),
    src: Source = Depends(get_source),
) -> Layer:
    if group is not None and group not in src.data.groups:
        raise ValidationError(problem("unknown_column", f"No group {group!r}; groups are {list(src.data.groups)}"))
    return Layer(group, statistic, permutations, seed)


class ItemsQuery:
    """GET /ogc/collections/{collection_id}/items: the collection as this caller may see it, and the page."""

    def __init__(
        self,
        collection_id: str = Path(...),
        bbox: str | None = Query(None, description="minLon,minLat,maxLon,maxLat"),
        limit: int = Query(100, ge=1, le=10000),
        offset: int = Query(0, ge=0),
        registry: Registry = Depends(get_registry),
        settings: Settings = Depends(get_settings),
        owner: bool = Depends(is_owner),
    ):
        collection = CollectionId.parse(collection_id)
        src = load_source(registry, settings, collection.dataset, owner) if collection else None
        if src is None or (collection.group is not None and collection.group not in src.data.groups):
            raise not_found("collection", collection_id, "See /ogc/collections.")
        self.collection_id, self.collection, self.src = collection_id, collection, src
        self.bbox_text, self.bbox, self.limit, self.offset = bbox, parse_bbox(bbox), limit, offset
