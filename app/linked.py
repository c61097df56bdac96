"""An upload audited against the published datasets of its date (:mod:`spatial.disclosure_linked`).

Datasets of one period count the same people: on nested areas, one's published counts minus the other's give the
withheld ones. Before an upload is stored, the other datasets of its year (or, undated, the other undated ones) are
read as the public sees them; the areas the audit withholds are stored in the new row's disclosure rule (its
threshold and method pinned with them), and a period's uploads are audited and stored one at a time (a file lock
across workers), so two concurrent uploads cannot each miss the other.
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager

import numpy as np
from pyproj import CRS, Transformer
from pyproj.exceptions import ProjError

from spatial.dataset import AreaDataset
from spatial.disclosure import small_cells
from spatial.disclosure_linked import Layer, audit
from spatial.errors import ValidationError, problem

from .deps import method_for, threshold_for
from .registry import Registry
from .settings import Settings


def period(date: str | None, year: int | None) -> str:
    """The period two datasets must share to be audited together: the year (a day counts as its year)."""
    if date:
        return date[:4]
    return f"{int(year):04d}" if year is not None else "undated"


def _row_period(row: dict, rows: dict) -> str:
    """A stored dataset's period; a derived one without a date (an informal overlay) has its source's."""
    for _ in range(8):
        if row.get("date") or row.get("year") is not None or rows.get(row.get("derived_from")) is None:
            break
        row = rows[row["derived_from"]]
    return period(row.get("date"), row.get("year"))


@contextmanager
def audited(registry: Registry, settings: Settings, ds: AreaDataset, disclosure: dict | None, date, year):
    """The disclosure rule to store with ``ds``; hold it while storing (same-period uploads wait for each other)."""
    key = period(date, year)
    with open(registry.root / f".linked-{key}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield _rule(registry, settings, ds, disclosure, key)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _rule(registry: Registry, settings: Settings, ds: AreaDataset, disclosure: dict | None, key: str) -> dict | None:
    threshold = int((disclosure or {}).get("threshold", settings.disclosure_threshold))
    method = str((disclosure or {}).get("method", settings.disclosure_method))
    rows = {r["id"]: r for r in registry.list()}
    others = [r for r in rows.values() if _row_period(r, rows) == key]
    if others:  # only then measure the upload's box (no work for an upload alone in its period)
        box = _lonlat_box(ds)
        others = [r for r in others if _meets(r["bounds"], box)]
    if not others:
        return disclosure
    crs = ds.areas.crs  # area shares are ratios of nearby shapes: any CRS measures them (no reprojection of the upload)
    counts = ds.areas[ds.count_columns].to_numpy(dtype=float)
    own = small_cells(counts, threshold).any(axis=1) if method == "suppress" and threshold > 1 else np.zeros(ds.n, bool)
    new = _layer(ds.meta.name, ds, own, threshold, crs)
    published = []
    for info in others:
        snap = registry.snapshot(info["id"], info)
        if snap is None:  # deleted meanwhile
            continue
        info, other = snap
        t, m = threshold_for(info, settings, owner=False), method_for(info, settings)
        public = registry.public(info["id"], info, other, t, m)
        published.append(_layer(info["id"], other, public.withheld, t, crs))
    result = audit(new, published, can_withhold=method == "suppress" and threshold > 1)
    if result.refused:
        ids = ds.ids[result.refused.get("areas", np.zeros(0, int))]
        raise ValidationError(_refusal(result.refused, threshold, method, ids))
    if not result.linked:
        return disclosure
    withhold = ds.ids[result.withhold]
    if (own | result.withhold).all():
        raise ValidationError(
            problem(
                "linked_disclosure",
                f"Every area of this upload would have to be withheld: with {', '.join(result.linked)} (same "
                f"date, nested areas) each would let a withheld count be computed. Upload it on the same areas, "
                "on finer ones, or with disclosure_method=cell_key",
            )
        )
    return {
        **(disclosure or {}),
        "threshold": threshold,
        "method": method,
        "withhold": [str(i) for i in withhold],
        "linked": result.linked,
    }


def _refusal(refused: dict, threshold: int, method: str, ids):
    names = ", ".join(refused["with"])
    if refused["reason"] == "partial":
        why = (
            f"its areas partly overlap areas of {names} (same date) next to withheld areas, so their counts could "
            "be estimated by differencing. Upload it on areas that nest in or contain theirs (up to 1% of an "
            "area), or publish every dataset of this date with disclosure_method=cell_key"
        )
    elif refused["reason"] == "solvable":
        rule = "unprotected (disclosure_threshold 0)" if threshold <= 1 else f"published with {method}"
        why = (
            f"{rule}, its counts on nested areas would let anyone compute areas that {names} (same date) withhold. "
            "Upload it with disclosure_method=suppress (its areas are then withheld where needed) or on the same areas"
        )
    else:
        why = f"its areas and those of {names} (same date) nest too intricately to audit; upload it on their areas"
    return problem("linked_disclosure", f"This upload cannot be published safely: {why}", ids)


def _layer(name: str, ds: AreaDataset, hidden: np.ndarray, threshold: int, crs: CRS) -> Layer:
    geometry = (ds.areas.geometry if ds.areas.crs == crs else ds.areas.geometry.to_crs(crs)).to_numpy()
    counts = ds.areas[ds.count_columns].to_numpy(dtype=float)
    columns = ("__total__", *ds.count_columns[1:])
    return Layer(name, geometry, hidden, counts=counts, threshold=threshold, columns=columns)


def _meets(bounds, box) -> bool:
    """Whether a dataset's box (lon/lat) meets the upload's: only then can their areas nest."""
    if box is None or not bounds:
        return True
    return not (bounds[0] > box[2] or box[0] > bounds[2] or bounds[1] > box[3] or box[1] > bounds[3])


def _lonlat_box(ds: AreaDataset):
    """The upload's box in longitude/latitude (its projected box transformed, not every vertex)."""
    if not len(ds.areas) or ds.areas.crs is None:
        return None
    try:
        to_lonlat = Transformer.from_crs(ds.areas.crs, 4326, always_xy=True)
        return to_lonlat.transform_bounds(*ds.areas.total_bounds, densify_pts=21)
    except ProjError:
        return None
