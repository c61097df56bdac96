"""Local statistics over HTTP: the same fields as `segmap local`, as GeoJSON or CSV."""
from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from spatial.dataset import AreaDataset
from spatial.errors import ValidationError, problem
from spatial.disclosure import protect_frame
from spatial.export import csv_safe, local_frame

from ..deps import Source, get_settings, get_source
from ..http import cached, cached_body, etag_for, not_modified
from ..settings import Settings

router = APIRouter(prefix="/v1/datasets", tags=["statistics"])


def run_local(ds: AreaDataset, *, group, statistic, total, weights, k, distance, permutations, seed, alpha,
              correction, other, smoothing, max_permutations=9999):
    from spatial.local import local_statistic
    return local_statistic(ds, group, statistic, total=total, weights=weights, k=k, distance=distance,
                           permutations=permutations, seed=seed, alpha=alpha, correction=correction,
                           other=other, smoothing=smoothing, max_permutations=max_permutations)


@router.get("/{dataset_id}/local", summary="Local statistics per area (LISA, Gi*, LQ …)")
async def local(
    request: Request, dataset_id: str,
    group: str | None = Query(None, description="group column (default: the dataset's first group)"),
    statistic: str = Query("lisa", description="lisa, gi_star, lq, entropy or bivariate_lisa"),
    total: str | None = None,
    weights: str = Query("queen", description="queen, rook, knn, distance or kernel"),
    k: int | None = Query(None, ge=1, le=100), distance: float | None = Query(None, gt=0),
    permutations: int | None = Query(None, ge=0, description="default: enough for the correction over these areas, "
                                                            "at most the server's limit"),
    seed: int = Query(0, ge=0, le=2**32 - 1), alpha: float = Query(0.05, gt=0, lt=1),
    correction: str = Query("fdr", description="fdr, bonferroni or none"),
    other: str | None = None, smoothing: str | None = Query(None, description="eb: empirical Bayes"),
    format: str = Query("geojson", description="geojson or csv"),
    src: Source = Depends(get_source), settings: Settings = Depends(get_settings),
):
    if format not in ("geojson", "csv"):
        raise ValidationError(problem("bad_parameter", "format must be geojson or csv"))
    if permutations is not None and permutations > settings.max_permutations:
        raise ValidationError(problem("bad_parameter", f"permutations is limited to {settings.max_permutations}; ask for fewer"))
    ds = src.dataset  # the protected table: withheld areas are neither tested nor anybody's neighbour
    group = group or ds.groups[0]
    # Only declared columns are public: anything else is refused by name and role, never computed on.
    ds.require_declared(group, "group")
    if total is not None:
        ds.require_declared(total, "total", total=True)
    if other is not None:
        ds.require_declared(other, "other")
    etag = etag_for("local", src.key(), sorted(request.query_params.multi_items()))
    if not_modified(request, etag):
        return cached(request, etag, lambda: None)

    def compute() -> bytes:
        res = run_local(ds, group=group, statistic=statistic, total=total, weights=weights, k=k, distance=distance,
                        permutations=permutations, seed=seed, alpha=alpha, correction=correction, other=other,
                        smoothing=smoothing, max_permutations=settings.max_permutations)
        frame = protect_frame(local_frame(ds, res, geometry=(format == "geojson")), src.data)
        meta = res.meta_dict()
        if src.data.report:
            meta["disclosure"] = src.data.report
        if format == "csv":
            return csv_safe(frame).to_csv(index=False).encode()
        frame["label"] = frame["label"].astype(str)
        body = json.loads(frame.to_json(drop_id=True, na="null"))
        body["segmap"] = meta
        return json.dumps(body).encode()

    body = await cached_body(request, f"local:{etag}", dataset_id, src.version, compute)
    if format == "csv":
        resp = Response(body, media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{dataset_id}-{statistic}.csv"'})
    else:
        resp = Response(body, media_type="application/geo+json")
    return cached(request, etag, lambda: resp, 300)
