"""City-wide indices over HTTP: the same names and fields as `segmap indices --format json`."""
from __future__ import annotations

import math

from fastapi import APIRouter, Depends, Query, Request, Response

from spatial.errors import ValidationError, problem

from ..deps import Source, get_registry, get_settings, get_source, load_source
from ..http import cached, cached_body, etag_for, json_response
from ..problems import not_found
from ..settings import Settings

router = APIRouter(prefix="/v1/datasets", tags=["statistics"])


@router.get("/{dataset_id}/indices", summary="City-wide segregation indices with inference")
async def indices(
    request: Request,
    dataset_id: str,
    group: list[str] | None = Query(None, description="group column(s); two-group indices use the first"),
    total: str | None = Query(None, description="total column (default: the dataset's)"),
    index: list[str] | None = Query(None, description="index names (default: all aspatial)"),
    permutations: int = Query(0, ge=0, description="simulations for p-values and intervals"),
    seed: int = Query(0, ge=0, le=2**32 - 1, description="random seed (default 0, so a URL always gives the same numbers)"),
    null: str | None = Query(None, description="random_allocation or permutation"),
    region: str | None = Query(None, description="region column to decompose mutual_information"),
    compare_to: str | None = Query(None, description="id of a second dataset for a two-sample comparison"),
    compare_group: str | None = Query(None, description="a second group of this dataset to compare with"),
    multiscalar: str | None = Query(None, description="distances in metres, e.g. 500,1000,2000,4000: adds each aspatial "
                                                      "two-group index's multiscalar profile"),
    src: Source = Depends(get_source), settings: Settings = Depends(get_settings), registry=Depends(get_registry),
):
    if permutations > settings.max_permutations:
        raise ValidationError(problem("bad_parameter", f"permutations is limited to {settings.max_permutations}; ask for fewer"))
    distances = None
    if multiscalar:
        try:
            distances = [float(v) for v in multiscalar.split(",") if v.strip()]
        except ValueError:
            raise ValidationError(problem("bad_parameter", "multiscalar takes metres separated by commas, e.g. 500,1000,2000,4000")) from None
        if not distances or not all(math.isfinite(d) and d > 0 for d in distances):
            raise ValidationError(problem("bad_parameter", f"multiscalar distances must be finite positive metres, e.g. "
                                          f"500,1000,2000,4000; got {multiscalar!r}"))
    ds = src.dataset  # the protected table: public callers never get indices of true counts
    other = None
    if compare_to:
        other = load_source(registry, settings, compare_to, src.owner)
        if other is None:
            raise not_found("dataset", compare_to, "compare_to must name a registered dataset (GET /v1/datasets).")
    groups = list(dict.fromkeys(group or [ds.groups[0]]))
    # Only declared columns are public: a group, total or region the upload did not declare is refused by name.
    for g in groups:
        ds.require_declared(g, "group")
    if total is not None:
        ds.require_declared(total, "total", total=True)
    if compare_group is not None:
        ds.require_declared(compare_group, "compare_group")
    if region is not None and region != ds.region_col:
        raise ValidationError(problem("bad_column_role", f"region {region!r} is not this dataset's declared region column "
                                      f"({ds.region_col!r})" if ds.region_col else
                                      f"region {region!r}: this dataset declared no region column at upload"))
    etag = etag_for("indices", src.key(), other and other.key(), sorted(request.query_params.multi_items()))

    def compute():
        from spatial.indices.compute import compute_indices
        res = compute_indices(ds, group=groups[0], groups=groups, total=total, indices=index, region=region,
                              permutations=permutations, seed=seed, null=null, compare=other and other.dataset,
                              compare_group=compare_group, multiscalar=distances)
        out = {name: r.to_dict() for name, r in res.items()}
        if src.data.report:
            for r in out.values():
                r["disclosure"] = src.data.report
        return out

    from ..http import not_modified
    if not_modified(request, etag):
        return cached(request, etag, lambda: None)
    body = await cached_body(request, f"indices:{etag}", dataset_id, src.version, lambda: json_response(compute()).body)
    return cached(request, etag, lambda: Response(body, media_type="application/json"), 300)
