"""City-wide indices over HTTP: the same names and fields as `segmap indices --format json`."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response

from spatial.dataset import AreaDataset
from spatial.errors import ValidationError, problem

from ..deps import get_dataset, get_registry, get_settings
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
    ds: AreaDataset = Depends(get_dataset), settings: Settings = Depends(get_settings), registry=Depends(get_registry),
):
    if permutations > settings.max_permutations:
        raise ValidationError(problem("bad_parameter", f"permutations is limited to {settings.max_permutations}; ask for fewer"))
    distances = None
    if multiscalar:
        try:
            distances = [float(v) for v in multiscalar.split(",") if v.strip()]
        except ValueError:
            raise ValidationError(problem("bad_parameter", "multiscalar takes metres separated by commas, e.g. 500,1000,2000,4000")) from None
    other = None
    if compare_to:
        other = registry.load(compare_to)
        if other is None:
            raise not_found("dataset", compare_to, "compare_to must name a registered dataset (GET /v1/datasets).")
    groups = list(dict.fromkeys(group or [ds.groups[0]]))
    info = registry.info(dataset_id)
    other_version = registry.info(compare_to)["version"] if compare_to else None
    etag = etag_for("indices", dataset_id, info["version"], compare_to, other_version, sorted(request.query_params.multi_items()))

    def compute():
        from spatial.indices.compute import compute_indices
        res = compute_indices(ds, group=groups[0], groups=groups, total=total, indices=index, region=region,
                              permutations=permutations, seed=seed, null=null, compare=other, compare_group=compare_group,
                              multiscalar=distances)
        return {name: r.to_dict() for name, r in res.items()}

    from ..http import not_modified
    if not_modified(request, etag):
        return cached(request, etag, lambda: None)
    body = await cached_body(request, f"indices:{etag}", dataset_id, info["version"], lambda: json_response(compute()).body)
    return cached(request, etag, lambda: Response(body, media_type="application/json"), 300)
