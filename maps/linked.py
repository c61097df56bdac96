"""The linked views' data, made on the server so a page stays small whatever the city: a binned histogram of the
mapped values, a sample of the Moran scatter plot, each area's neighbours, an area's panel and the area search.

Every number comes from a :class:`maps.data.ViewData`, itself from the protected table; neighbours from the
public geometry.
"""

from __future__ import annotations

import math

import numpy as np

from spatial.dataset import ID
from spatial.disclosure import PublicData
from spatial.weights import contiguity_pairs

from .data import CLUSTER_VIEWS, LISA, SHARE_VIEWS, ViewData

HIST_BINS = 20
SCATTER_MAX = 2000  # points drawn in the Moran scatter plot; a seeded sample beyond
QUADRANTS = ("high_high", "low_high", "low_low", "high_low")


def _r(v, digits: int = 4):
    return None if v is None or not math.isfinite(float(v)) else round(float(v), digits)


def histogram_field(view: str) -> str:
    """The value the histogram bins: the share, or the LQ for the LQ view (its map's value)."""
    return "value" if view == "lq" else "share"


def histogram(vd: ViewData, bins: int = HIST_BINS) -> dict:
    """Counts of the mapped values in ``bins`` equal bins; hidden areas are counted apart."""
    field = histogram_field(vd.view)
    values = vd.frame[field].to_numpy(dtype=float)
    ok = np.isfinite(values)
    lo, hi = (float(values[ok].min()), float(values[ok].max())) if ok.any() else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1e-9
    counts, edges = np.histogram(values[ok], bins=bins, range=(lo, hi))
    return {
        "field": field,
        "pct": field == "share",
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
        "hidden": int((~ok).sum()),
    }


def scatter(vd: ViewData | None, seed: int = 0, limit: int = SCATTER_MAX) -> dict | None:
    """The Moran scatter plot of a LISA view: standardised share (x) against its spatial lag (y), at most
    ``limit`` points (a seeded sample, said in ``n``/``shown``); ``q`` the quadrant, ``s`` 2 significant after
    the correction, 1 before it only, 0 not."""
    if vd is None or vd.view != "lisa" or "lag" not in vd.frame:
        return None
    f = vd.frame
    x, y = f["z"].to_numpy(dtype=float), f["lag"].to_numpy(dtype=float)
    ok = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    rows = ok if len(ok) <= limit else np.sort(np.random.default_rng(seed).choice(ok, limit, replace=False))
    keys = f["label_key"].to_numpy(dtype=str)
    unc = f["uncorrected"].to_numpy(dtype=str)
    quad = np.select([(x > 0) & (y > 0), (x <= 0) & (y > 0), (x <= 0) & (y <= 0)], [0, 1, 2], 3)
    sig = np.where(np.isin(keys, QUADRANTS), 2, np.where(unc != "", 1, 0))
    slope = float((x[ok] * y[ok]).sum() / (x[ok] ** 2).sum()) if len(ok) and (x[ok] ** 2).sum() else 0.0
    return {
        "ids": [str(i) for i in f[ID].to_numpy()[rows]],
        "x": [_r(v, 3) for v in x[rows]],
        "y": [_r(v, 3) for v in y[rows]],
        "q": [int(v) for v in quad[rows]],
        "s": [int(v) for v in sig[rows]],
        "slope": _r(slope),
        "n": int(len(ok)),
        "shown": int(len(rows)),
        "colours": [LISA[k][1] for k in QUADRANTS],
        "quadrants": list(QUADRANTS),
    }


def neighbours(data: PublicData) -> tuple[list[int], list[int]]:
    """Queen neighbours of every area (public geometry) as CSR arrays: area i's are indices[indptr[i]:indptr[i+1]]."""
    i, j = contiguity_pairs(data.metric.geometry.to_numpy())
    order = np.lexsort((j, i))
    i, j = i[order], j[order]
    indptr = np.searchsorted(i, np.arange(data.n + 1))
    return [int(v) for v in indptr], [int(v) for v in j]


def per_area(views: dict[str, ViewData]) -> dict:
    """What the panel needs beyond the page's GeoJSON, aligned with its features: corrected p-values and the
    class each cluster view's hatched areas would have (-1 for none)."""
    out: dict = {}
    for v, vd in views.items():
        if v in CLUSTER_VIEWS:
            out[f"q_{v}"] = [_r(q, 5) for q in vd.frame["q_value"].to_numpy(dtype=float)]
            keys = [row["key"] for row in vd.meta.get("uncorrected", [])]
            out[f"u_{v}"] = [keys.index(u) if u in keys else -1 for u in vd.frame["uncorrected"]]
    return out


def area_info(data: PublicData, views: dict[str, ViewData], area_id: str, limit: int = 50) -> dict | None:
    """One area's panel: counts, share, each view's value, label and p before/after correction, neighbours."""
    ids = data.ids.astype(str)
    hits = np.flatnonzero(ids == str(area_id))
    if not len(hits):
        return None
    n = int(hits[0])
    first = next(iter(views.values())).frame
    out = {
        "id": str(area_id),
        "name": str(first["name"].iat[n]),
        "total": _r(first["total"].iat[n], 1),
        "count": _r(first["count"].iat[n], 1),
        "share": _r(first["share"].iat[n], 5),
        "views": {},
    }
    for v, vd in views.items():
        row = vd.frame.iloc[n]
        out["views"][v] = {
            "value": None if v in SHARE_VIEWS else _r(row["value"]),
            "label": str(row["label"]),
            "p": _r(row.get("p_value", np.nan), 5),
            "q": _r(row.get("q_value", np.nan), 5),
            "uncorrected": str(row.get("uncorrected", "") or ""),
        }
    i, j = _pairs(data)
    lo, hi = np.searchsorted(i, [n, n + 1])  # pairs are sorted by focal area
    nb = np.unique(j[lo:hi])[:limit]
    out["neighbours"] = [
        {"id": str(first[ID].iat[k]), "name": str(first["name"].iat[k]), "share": _r(first["share"].iat[k], 5)}
        for k in nb
    ]
    return out


def _pairs(data: PublicData) -> tuple[np.ndarray, np.ndarray]:
    """Queen pairs of the public geometry, built once per published table (the panel rebuilt them at every
    click: seconds at 1,000,000 areas)."""
    return data.dataset.weights_cache.get_or_make(
        ("page neighbours", data.n), lambda: contiguity_pairs(data.metric.geometry.to_numpy())
    )


def _search_keys(data: PublicData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids, names and lower-case "name\0id" keys, made once per published table (~3 s a query at 1,000,000)."""

    def make():
        ids = data.ids.astype(str)
        names = data.areas[data.name_col].astype(str).to_numpy() if data.name_col else ids
        return ids, names, np.char.lower(np.char.add(np.char.add(names.astype(str), "\x00"), ids))

    return data.dataset.weights_cache.get_or_make(("page search", data.n), make)


def search(data: PublicData, query: str, limit: int = 10) -> list[dict]:
    """Areas whose name or id contains ``query`` (case-insensitive; exact and leading matches first), with
    their WGS84 bounds to zoom to."""
    q = query.strip().lower()[:100]
    if not q:
        return []
    ids, names, keys = _search_keys(data)
    found = np.flatnonzero(np.char.find(keys, q) >= 0)
    rank = [
        (0 if ids[k].lower() == q or names[k].lower() == q else 1 if keys[k].startswith(q) else 2, k) for k in found
    ]
    chosen = [k for _, k in sorted(rank)[:limit]]
    if not chosen:
        return []
    bounds = data.areas.iloc[chosen].to_crs(4326).bounds.to_numpy()
    return [
        {"id": ids[k], "name": str(names[k]), "bounds": [[_r(b[1], 5), _r(b[0], 5)], [_r(b[3], 5), _r(b[2], 5)]]}
        for k, b in zip(chosen, bounds)
    ]
