"""City-wide indices and local statistics of a dataset as this caller may see it, as response bodies.

Both run on the protected table (``Source.dataset``) with parameters already checked (:mod:`app.params`);
the routes cache the bytes by ETag (:func:`app.http.cached`).
"""

from __future__ import annotations

import json

from spatial.disclosure import protect_frame
from spatial.export import csv_safe, local_frame

from .http import json_bytes
from .params import IndicesQuery, LocalQuery


def indices_json(q: IndicesQuery) -> bytes:
    """The indices with inference, named and shaped as `segmap indices --format json` prints them."""
    from spatial.indices.compute import IndexOptions, compute_indices

    options = IndexOptions(
        groups=tuple(q.groups),  # the first is the focal one
        total=q.total,
        indices=tuple(q.index or ()),
        region=q.region,
        permutations=q.permutations,
        seed=q.seed,
        null=q.null,
        compare=q.other and q.other.dataset,
        compare_group=q.compare_group,
        multiscalar=tuple(q.distances or ()),
    )
    res = compute_indices(q.src.dataset, options)
    out = {name: r.to_dict() for name, r in res.items()}
    if q.src.data.report:
        for r in out.values():
            r["disclosure"] = q.src.data.report
    return json_bytes(out)


def local_body(q: LocalQuery) -> bytes:
    """One local statistic per area (withheld areas kept, with null values and the label ``suppressed``),
    as CSV or as GeoJSON whose ``segmap`` member says how it was computed."""
    from spatial.local import local_statistic

    src, opts = q.src, q.options
    res = local_statistic(
        src.dataset,
        opts["group"],
        opts["statistic"],
        max_permutations=q.max_permutations,
        **{k: v for k, v in opts.items() if k not in ("group", "statistic")},
    )
    frame = protect_frame(local_frame(src.dataset, res, geometry=(q.format == "geojson")), src.data)
    if q.format == "csv":
        return csv_safe(frame).to_csv(index=False).encode()
    meta = res.meta_dict()
    if src.data.report:
        meta["disclosure"] = src.data.report
    frame["label"] = frame["label"].astype(str)
    body = json.loads(frame.to_json(drop_id=True, na="null"))
    body["segmap"] = meta
    return json.dumps(body).encode()
