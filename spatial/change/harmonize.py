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

import contextvars
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
from ..errors import Problem, ValidationError, problem
from ..informal import _largest_remainder
from .layers import area_crs, count_matrix, fine_layer, layer, weight_columns

METHODS = ("area", "population")
MATCH_TOLERANCE = 1e-6  # symmetric difference ÷ area under which two polygons are the same area
WHOLE = 1 - 1e-6  # a source area with this share of itself in one target is carried whole
THREADS = min(4, os.cpu_count() or 1)
CHUNK = 20_000  # pieces per chunk: below that, threads cost more than they save
COVER_TOLERANCE = 0.01  # the finer layer may miss this share of a source area (edges drawn differently)


@dataclass
class Harmonized:
    """Counts on the target areas (``frame``: the target's columns, the counts as integers, estimated_share).
    ``estimates`` are the floats before rounding (tobler's numbers for ``area``); ``table`` holds the weights
    of the ``total`` column (source × target, each populated row sums to 1); ``crs`` is where areas were
    measured; ``matched`` lists the (source_id, target_id) pairs of unchanged areas."""

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
    if not 0 <= match_tolerance < 1:
        raise ValidationError(problem("bad_parameter", f"match_tolerance must lie in [0, 1), not {match_tolerance}"))
    counts = list(counts)
    total = total or (counts[0] if counts else None)
    values = count_matrix(source, counts)
    if total not in counts:
        raise ValidationError(problem("unknown_column", f"total {total!r} must be one of the counts {counts}"))
    crs = area_crs(source)
    sids, sgeo = layer(source, source_key, "source", crs)
    tids, tgeo = layer(target, target_key, "target", crs)
    _refuse_overlapping_targets(tgeo, tids)
    checkpoint()
    si, ti, a, pieces = _overlaps(sgeo, tgeo, keep_pieces=method == "population")
    _check_overlap(si, sids, values.sum(axis=1))
    notes: list[Problem] = []
    if method == "population":
        columns = weight_columns(weight_column, counts)
        fine = fine_layer(weights, sorted(set(columns.values())), crs)
        by_column = _dasymetric_weights(si, a, pieces, fine, sids, values, notes)
        shares = [by_column[columns[c]] for c in counts]
    else:
        shares = [_row_shares(si, a, len(sids))] * len(counts)
    matched = _matches(si, ti, a, shapely.area(sgeo), shapely.area(tgeo), match_tolerance)
    shares = [_one_to_one(si, ti, w, matched, len(sids)) for w in shares]
    checkpoint()
    pairs = (si, ti, sids, tids)
    return _result(target, target_key, pairs, counts, values, shares, counts.index(total), matched, method, crs, notes)


def _result(target, key, pairs, counts, values, shares, k_total, matched, method, crs, notes) -> Harmonized:
    si, ti, sids, tids = pairs
    n = len(tids)
    est = np.column_stack([np.bincount(ti, weights=w * values[si, k], minlength=n) for k, w in enumerate(shares)])
    share, city = _estimated_share(si, ti, shares[k_total], values[:, k_total], n)
    outside = np.bincount(ti, minlength=n) == 0
    if outside.any():
        notes.append(
            problem(
                "target_outside_source", f"{int(outside.sum())} target areas overlap no source area: 0", tids[outside]
            )
        )
    index = pd.Index(tids, name=key)
    return Harmonized(
        frame=_frame(target, key, tids, counts, _within_total(_integers(est), est, values, k_total), share),
        estimates=pd.DataFrame(est, index=index, columns=counts),
        estimated_share=pd.Series(share, index=index, name="estimated_share"),
        city_estimated_share=city,
        matched=pd.DataFrame({"source_id": sids[si[matched]], "target_id": tids[ti[matched]]}),
        method=method,
        crs=crs,
        table=sp.csr_matrix((shares[k_total], (si, ti)), shape=(len(sids), n)),
        notes=notes,
    )


def _refuse_overlapping_targets(tgeo: np.ndarray, tids: np.ndarray) -> None:
    """Targets overlapping each other would publish a coarse carried count beside the fine ones inside it (the
    refusal every upload gets, :mod:`spatial.overlaps`): checked here, so every caller (HTTP, CLI, library) gets it."""
    from ..overlaps import refusal_of

    why = (
        "The target areas overlap each other, so counts carried onto them could be differenced (carry onto one "
        "level at a time): "
    )
    refusal = refusal_of(tgeo, tids, why)
    if refusal is not None:
        raise ValidationError(refusal)


def _overlaps(sgeo, tgeo, keep_pieces: bool = False):
    """Every (source, target) pair with a piece of positive area: indices, piece area, pieces (if asked)."""
    tree = shapely.STRtree(tgeo)
    si, ti = tree.query(sgeo, predicate="intersects")
    pieces = _intersection(sgeo[si], tgeo[ti])
    a = shapely.area(pieces)
    keep = a > 0
    return si[keep], ti[keep], a[keep], (pieces[keep] if keep_pieces else None)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersections in chunks of :data:`CHUNK`, on several threads (GEOS releases the GIL), each
    chunk starting at a checkpoint so a request that gave up stops within one chunk."""
    if len(a) <= CHUNK:
        return shapely.intersection(a, b)
    edges = np.unique(np.r_[np.arange(0, len(a), CHUNK), len(a)])

    def cut(i: int) -> np.ndarray:
        checkpoint()
        return shapely.intersection(a[edges[i] : edges[i + 1]], b[edges[i] : edges[i + 1]])

    with ThreadPoolExecutor(min(THREADS, len(edges) - 1)) as pool:
        # each chunk runs in a copy of the caller's context, where its cancel token lives
        jobs = [pool.submit(contextvars.copy_context().run, cut, i) for i in range(len(edges) - 1)]
        return np.concatenate([job.result() for job in jobs])


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


def _within_total(ints: np.ndarray, est: np.ndarray, values: np.ndarray, k_total: int) -> np.ndarray:
    """A group that never exceeds the total in a source area must not exceed it in a target area either (the
    datasets built from the result refuse that). Rounding, or a group spread by its own finer-layer counts,
    can break it by a few people: those are moved to the target areas with room that were rounded down most,
    so the column's total is unchanged."""
    t = ints[:, k_total]
    for k in range(ints.shape[1]):
        c = ints[:, k]
        if k == k_total or (values[:, k] > values[:, k_total]).any() or (c <= t).all():
            continue
        excess = int(np.maximum(c - t, 0).sum())
        c[:] = np.minimum(c, t)
        room = np.flatnonzero(c < t)
        order = room[np.argsort(-(est[room, k] - c[room]), kind="stable")]
        while excess:  # each pass gives one person to each area with room, most short-changed first
            take = order[c[order] < t[order]][:excess]
            if not len(take):  # cannot happen when the column's total is within the total's; never loop
                break
            c[take] += 1
            excess -= len(take)
    return ints


def _frame(target, key, tids, counts, ints, share) -> gpd.GeoDataFrame:
    keep = [c for c in target.columns if c not in counts and c not in (key, "estimated_share")]
    out = target[keep].copy()
    out.insert(0, key, tids)
    for k, c in enumerate(counts):
        out[c] = ints[:, k]
    out["estimated_share"] = share
    geom = target.geometry.name
    return gpd.GeoDataFrame(out[[c for c in out.columns if c != geom] + [geom]], geometry=geom, crs=target.crs)
