"""Boundary harmonisation: counts carried from one geography (source) onto another (target).

Both layers are measured in one equal-area CRS (the source's own when it is equal-area, else a Lambert
azimuthal projection centred on it). Every source area's counts are split over the target areas it
overlaps, with weights that sum to one per source area, so nobody is lost or counted twice:

* ``area`` — in proportion to the area of each piece (areal weighting; the same numbers as tobler's
  ``area_interpolate`` for extensive variables, ``allocate_total=True``);
* ``population`` — dasymetric: in proportion to the people of a finer layer with counts (e.g. the old
  planning areas) living in each piece, each finer unit's people spread evenly over its own area. People
  follow where people live, not where the land is.

Areas whose geometry is unchanged (up to digitising noise, ``match_tolerance``) map one to one, whatever
their ids. Float estimates are rounded per column by largest remainder, so each column's integers add up
to its source total exactly. Each target reports the share of its population that was estimated (came
from a source area split between several targets) rather than carried whole.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from pyproj import CRS

from ..cancel import checkpoint
from ..crs import equal_area_crs
from ..errors import Problem, ValidationError, problem
from ..informal import _largest_remainder

METHODS = ("area", "population")
MATCH_TOLERANCE = 1e-6  # symmetric difference ÷ area under which two polygons are the same area
WHOLE = 1 - 1e-6  # a source area with this share of itself in one target is carried whole
THREADS = min(4, os.cpu_count() or 1)
CHUNK = 20_000  # pieces per thread at least: below that, threads cost more than they save
COVER_TOLERANCE = 0.01  # the finer layer may miss this share of a source area (edges drawn differently)


@dataclass
class Harmonized:
    """Counts on the target areas. ``estimates`` are the floats before rounding (tobler's numbers for
    ``area``); ``table`` holds the weights (source × target, each populated row sums to 1)."""

    frame: gpd.GeoDataFrame
    estimates: pd.DataFrame
    estimated_share: pd.Series
    city_estimated_share: float
    matched: pd.DataFrame
    method: str
    crs: CRS
    table: sp.csr_matrix
    notes: list[Problem] = field(default_factory=list)


def harmonize(
    source: gpd.GeoDataFrame,
    target: gpd.GeoDataFrame,
    counts: list[str],
    *,
    method: str = "area",
    weights: gpd.GeoDataFrame | None = None,
    weight_column: str | Mapping[str, str] | None = None,
    source_key: str = "id",
    target_key: str = "id",
    total: str | None = None,
    match_tolerance: float = MATCH_TOLERANCE,
) -> Harmonized:
    """Carry ``counts`` (columns of ``source``) onto ``target``. ``total`` (default: the first count) is the
    population whose estimated share is reported. With ``method="population"``, ``weight_column`` names the
    finer layer's people: one column for every count, or a mapping count → column so that each group follows
    where that group lives (e.g. foreigners through the finer layer's foreigners)."""
    if method not in METHODS:
        raise ValidationError(problem("bad_parameter", f"Unknown method {method!r}; choose from {list(METHODS)}"))
    counts = list(counts)
    total = total or (counts[0] if counts else None)
    values = _counts(source, counts)
    if total not in counts:
        raise ValidationError(problem("unknown_column", f"total {total!r} must be one of the counts {counts}"))
    crs = _area_crs(source)
    sids, sgeo = _layer(source, source_key, "source", crs)
    tids, tgeo = _layer(target, target_key, "target", crs)
    checkpoint()
    si, ti, a, pieces = _overlaps(sgeo, tgeo, keep_pieces=method == "population")
    _check_overlap(si, sids, values.sum(axis=1))
    notes: list[Problem] = []
    if method == "population":
        columns = _weight_columns(weight_column, counts)
        fine = _fine_layer(weights, sorted(set(columns.values())), crs)
        by_column = _dasymetric_weights(si, a, pieces, fine, sids, values, notes)
        shares = [by_column[columns[c]] for c in counts]
    else:
        shares = [_row_shares(si, a, len(sids))] * len(counts)
    matched = _matches(si, ti, a, shapely.area(sgeo), shapely.area(tgeo), match_tolerance)
    shares = [_one_to_one(si, ti, w, matched, len(sids)) for w in shares]
    est = np.column_stack(
        [np.bincount(ti, weights=w * values[si, k], minlength=len(tids)) for k, w in enumerate(shares)]
    )
    checkpoint()
    w_total = shares[counts.index(total)]
    share, city = _estimated_share(si, ti, w_total, values[:, counts.index(total)], len(tids))
    outside = np.bincount(ti, minlength=len(tids)) == 0
    if outside.any():
        notes.append(
            problem(
                "target_outside_source", f"{int(outside.sum())} target areas overlap no source area: 0", tids[outside]
            )
        )
    index = pd.Index(tids, name=target_key)
    return Harmonized(
        frame=_frame(target, target_key, tids, counts, _integers(est), share),
        estimates=pd.DataFrame(est, index=index, columns=counts),
        estimated_share=pd.Series(share, index=index, name="estimated_share"),
        city_estimated_share=city,
        matched=pd.DataFrame({"source_id": sids[si[matched]], "target_id": tids[ti[matched]]}),
        method=method,
        crs=crs,
        table=sp.csr_matrix((w_total, (si, ti)), shape=(len(sids), len(tids))),
        notes=notes,
    )


def _weight_columns(weight_column, counts: list[str]) -> dict[str, str]:
    """count → finer-layer column."""
    if weight_column is None:
        raise ValidationError(
            problem(
                "missing_weights",
                "The population method needs a finer layer with counts (weights) and its count column "
                "(weight_column), e.g. the old planning areas and their inhabitants",
            )
        )
    if isinstance(weight_column, str):
        return dict.fromkeys(counts, weight_column)
    missing = [c for c in counts if c not in weight_column]
    if missing:
        raise ValidationError(problem("missing_weights", f"No finer-layer column given for the counts {missing}"))
    return {c: str(weight_column[c]) for c in counts}


def _counts(source, counts: list[str]) -> np.ndarray:
    if not isinstance(source, gpd.GeoDataFrame):
        raise ValidationError(problem("not_a_layer", "The source must be a layer with geometry"))
    if not counts:
        raise ValidationError(problem("no_counts", "Name at least one count column to carry"))
    missing = [c for c in counts if c not in source.columns]
    if missing:
        cols = [c for c in source.columns if c != source.geometry.name]
        raise ValidationError(problem("unknown_column", f"No count column {missing} in the source; columns are {cols}"))
    out = np.empty((len(source), len(counts)))
    for k, c in enumerate(counts):
        v = pd.to_numeric(source[c], errors="coerce").to_numpy(float)
        bad = ~np.isfinite(v) | (v < 0)
        if bad.any():
            raise ValidationError(
                problem("bad_count", f"{int(bad.sum())} source areas have a missing, non-numeric or negative {c!r}")
            )
        out[:, k] = v
    return out


def _is_equal_area(crs: CRS) -> bool:
    op = crs.coordinate_operation
    name = (op.method_name if op is not None else "").lower()
    return crs.is_projected and ("equal area" in name or name in ("mollweide", "sinusoidal", "equal earth"))


def _area_crs(source: gpd.GeoDataFrame) -> CRS:
    if source.crs is None:
        raise ValidationError(problem("no_crs", "The source layer has no CRS; set one (e.g. EPSG:4326)"))
    crs = CRS.from_user_input(source.crs)
    return crs if _is_equal_area(crs) else equal_area_crs(source)


def _polygonal(geo: np.ndarray) -> np.ndarray:
    """Valid polygons: invalid ones (often pinched by reprojection) repaired, keeping only their areas."""
    bad = ~shapely.is_valid(geo)
    if bad.any():
        geo = geo.copy()
        geo[bad] = shapely.make_valid(geo[bad], method="structure", keep_collapsed=False)
    return geo


def _layer(gdf, key: str, role: str, crs: CRS) -> tuple[np.ndarray, np.ndarray]:
    """(ids as strings, polygons in ``crs``), refusing what cannot be measured."""
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise ValidationError(problem("not_a_layer", f"The {role} must be a layer with geometry"))
    if gdf.crs is None:
        raise ValidationError(problem("no_crs", f"The {role} layer has no CRS; set one (e.g. EPSG:4326)"))
    if len(gdf) == 0:
        raise ValidationError(problem("empty", f"The {role} layer has no areas"))
    if key not in gdf.columns:
        cols = [c for c in gdf.columns if c != gdf.geometry.name]
        raise ValidationError(problem("missing_key", f"No id column {key!r} in the {role}; columns are {cols}"))
    ids = gdf[key].astype(str).to_numpy()
    dup = pd.Series(ids).duplicated(keep=False).to_numpy()
    if dup.any():
        raise ValidationError(problem("duplicate_id", f"{role} ids must be unique; repeated", np.unique(ids[dup])))
    geo = np.asarray(gdf.geometry.values, dtype=object)
    empty = shapely.is_missing(geo) | shapely.is_empty(geo)
    polygon = np.isin(shapely.get_type_id(geo), (3, 6))  # Polygon, MultiPolygon
    if (empty | ~polygon).any():
        raise ValidationError(
            problem("not_polygons", f"{role} areas must be non-empty polygons; these are not", ids[empty | ~polygon])
        )
    if CRS.from_user_input(gdf.crs) != crs:
        geo = np.asarray(gdf.geometry.to_crs(crs).values, dtype=object)
    return ids, _polygonal(geo)


def _overlaps(sgeo, tgeo, keep_pieces: bool = False):
    """Every (source, target) pair with a piece of positive area: indices, piece area, pieces (if asked)."""
    tree = shapely.STRtree(tgeo)
    si, ti = tree.query(sgeo, predicate="intersects")
    pieces = _intersection(sgeo[si], tgeo[ti])
    a = shapely.area(pieces)
    keep = a > 0
    return si[keep], ti[keep], a[keep], (pieces[keep] if keep_pieces else None)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersections, in chunks on several threads when there are many (GEOS releases the GIL)."""
    workers = min(THREADS, len(a) // CHUNK)
    if workers < 2:
        return shapely.intersection(a, b)
    edges = np.linspace(0, len(a), workers + 1).astype(int)
    with ThreadPoolExecutor(workers) as pool:
        parts = pool.map(
            lambda i: shapely.intersection(a[edges[i] : edges[i + 1]], b[edges[i] : edges[i + 1]]), range(workers)
        )
        return np.concatenate(list(parts))


def _check_overlap(si: np.ndarray, sids: np.ndarray, people: np.ndarray) -> None:
    if len(si) == 0:
        raise ValidationError(
            problem(
                "no_overlap",
                "The source and target geographies do not overlap: check that both cover the same place "
                "and that each file's CRS is right",
            )
        )
    lost = (np.bincount(si, minlength=len(sids)) == 0) & (people > 0)
    if lost.any():
        raise ValidationError(
            problem(
                "source_outside_target",
                f"{int(lost.sum())} source areas with people overlap no target area, so their counts cannot be "
                "carried; extend the target geography or drop these areas",
                sids[lost],
            )
        )


def _row_shares(si: np.ndarray, x: np.ndarray, n: int) -> np.ndarray:
    """x ÷ its source row's sum (tobler's ``allocate_total=True``), 0 for an empty row."""
    row = np.bincount(si, weights=x, minlength=n)
    return x / np.where(row > 0, row, 1.0)[si]


def _matches(si, ti, a, sarea, tarea, tol: float) -> np.ndarray:
    """Pairs whose two polygons are the same area: symmetric difference ≤ tol × area, one pair per polygon."""
    big = np.maximum(sarea[si], tarea[ti])
    same = sarea[si] + tarea[ti] - 2 * a <= tol * big
    idx = np.flatnonzero(same)
    first_s = np.unique(si[idx], return_index=True)[1]
    idx = idx[first_s]
    idx = idx[np.unique(ti[idx], return_index=True)[1]]
    out = np.zeros(len(si), dtype=bool)
    out[idx] = True
    return out


def _one_to_one(si, ti, w, matched, n_sources: int) -> np.ndarray:
    """Matched pairs carry the whole source; slivers of other sources inside a matched target go to their
    other targets (a source with nowhere else to go keeps its shares)."""
    if not matched.any():
        return w
    drop = (np.isin(si, si[matched]) | np.isin(ti, ti[matched])) & ~matched
    w2 = np.where(drop, 0.0, w)
    w2[matched] = 1.0
    emptied = np.bincount(si, weights=w2, minlength=n_sources)[si] == 0
    w2 = np.where(emptied, w, w2)
    return _row_shares(si, w2, n_sources)


def _fine_layer(weights, columns: list[str], crs: CRS) -> tuple[np.ndarray, pd.DataFrame]:
    """(polygons in ``crs``, people per polygon in each of ``columns``) of the finer layer."""
    if weights is None:
        raise ValidationError(
            problem("missing_weights", "The population method needs a finer layer with counts (weights)")
        )
    missing = [c for c in columns if c not in getattr(weights, "columns", ())]
    if missing:
        raise ValidationError(problem("unknown_column", f"No count column {missing} in the finer layer"))
    pop = weights[columns].apply(pd.to_numeric, errors="coerce").astype(float)
    bad = ~np.isfinite(pop.to_numpy()).all(axis=1) | (pop.to_numpy() < 0).any(axis=1)
    if bad.any():
        raise ValidationError(
            problem("bad_count", f"{int(bad.sum())} units of the finer layer have a missing or negative {columns}")
        )
    _, geo = _layer(weights.assign(_row=np.arange(len(weights))), "_row", "finer layer", crs)
    return geo, pop


def _piece_areas(pieces, fgeo, pi, fi, farea) -> np.ndarray:
    """Area of piece ∩ finer unit for each pair; a unit wholly inside its piece needs no intersection."""
    shapely.prepare(pieces)
    inside = shapely.contains_properly(pieces[pi], fgeo[fi])
    fa = farea[fi].copy()
    cut = ~inside
    fa[cut] = shapely.area(shapely.intersection(pieces[pi[cut]], fgeo[fi[cut]]))
    return fa


def _check_cover(si, a, pi, fa, n_pieces, sids, people) -> None:
    """Refuse a finer layer that leaves part of a populated source area uncovered (nobody could live there)."""
    n = len(sids)
    covered = np.bincount(si, weights=np.bincount(pi, weights=fa, minlength=n_pieces), minlength=n)
    inside = np.bincount(si, weights=a, minlength=n)
    cover = np.divide(covered, inside, out=np.ones(n), where=inside > 0)
    short = (cover < 1 - COVER_TOLERANCE) & (people > 0)
    if short.any():
        worst = float(cover[short].min())
        raise ValidationError(
            problem(
                "weights_do_not_cover",
                f"The finer layer does not cover {int(short.sum())} source areas (as little as {worst:.1%} of one "
                "is covered); use a finer layer drawn over the whole source geography",
                sids[short],
            )
        )


def _dasymetric_weights(si, a, pieces, fine, sids, values, notes) -> dict[str, np.ndarray]:
    """Per finer-layer column, each piece's share of its source area: by that column's people living in it,
    each finer unit's people spread evenly over it. Source areas where nobody of the column lives fall back
    to area shares (a note names them)."""
    fgeo, fpop = fine
    pi, fi = shapely.STRtree(fgeo).query(pieces, predicate="intersects")
    farea = shapely.area(fgeo)
    fa = _piece_areas(pieces, fgeo, pi, fi, farea)
    n = len(sids)
    _check_cover(si, a, pi, fa, len(pieces), sids, values.sum(axis=1))
    populated = values.sum(axis=1) > 0
    out = {}
    for col in fpop.columns:
        pop = fpop[col].to_numpy()
        density = np.divide(pop, farea, out=np.zeros_like(pop), where=farea > 0)
        piece_pop = np.bincount(pi, weights=fa * density[fi], minlength=len(pieces))
        w = _row_shares(si, piece_pop, n)
        empty = (np.bincount(si, weights=piece_pop, minlength=n) == 0) & populated
        if empty.any():
            w = np.where(empty[si], _row_shares(si, a, n), w)
            notes.append(
                problem(
                    "area_fallback",
                    f"{int(empty.sum())} source areas have people but no {col!r} in the finer layer: split by area",
                    sids[empty],
                )
            )
        out[col] = w
    return out


def _estimated_share(si, ti, w, pop, n_targets: int) -> tuple[np.ndarray, float]:
    """Per target, the share of its people that came from source areas split between targets; and the city's."""
    split = np.bincount(si, weights=(w >= WHOLE).astype(float), minlength=len(pop)) == 0
    moved = pop[si] * w
    est = np.bincount(ti, weights=np.where(split[si], moved, 0.0), minlength=n_targets)
    tot = np.bincount(ti, weights=moved, minlength=n_targets)
    share = np.divide(est, tot, out=np.zeros(n_targets), where=tot > 0)
    city = float(pop[split].sum() / pop.sum()) if pop.sum() > 0 else 0.0
    return share, city


def _integers(est: np.ndarray) -> np.ndarray:
    """Per column, integers within 1 of the estimate adding up to the column's total (largest remainder).
    Whole carried counts stay exact: floating-point noise around an integer is removed first."""
    near = np.round(est)
    snapped = np.where(np.abs(est - near) < 1e-6, near, est)
    return np.column_stack([_largest_remainder(snapped[:, k]) for k in range(est.shape[1])]).astype(np.int64)


def _frame(target, key, tids, counts, ints, share) -> gpd.GeoDataFrame:
    keep = [c for c in target.columns if c not in counts and c not in (key, "estimated_share")]
    out = target[keep].copy()
    out.insert(0, key, tids)
    for k, c in enumerate(counts):
        out[c] = ints[:, k]
    out["estimated_share"] = share
    geom = target.geometry.name
    return gpd.GeoDataFrame(out[[c for c in out.columns if c != geom] + [geom]], geometry=geom, crs=target.crs)
