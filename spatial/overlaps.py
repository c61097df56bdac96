"""Areas of one dataset that overlap each other: refused, since one table cannot be protected against itself.

A dataset is protected as one table (:mod:`spatial.disclosure`). If its own areas nest (a grid and its coarse cells
in one file), a coarse count minus the published fine ones inside it gives a withheld fine count; if they partly
overlap, the difference estimates it. Datasets of one date are audited against each other
(:mod:`spatial.disclosure_linked`), so a hierarchy is safe as one dataset per level; within one dataset overlaps
are refused. Overlap is measured as in the linked audit: the share of the smaller area inside the larger, and up to
:data:`TOL` (1 %) is a sliver from digitising or reprojecting, accepted.

The cost is in telling neighbours that only touch from areas that overlap. Pairs come from an STR-tree of the
boxes; a pair whose boxes overlap by no more than ``TOL`` of the smaller area cannot overlap by more (a grid's
neighbours: boxes that only touch), so it is dropped without looking at the shapes. Where many pairs remain (a
Voronoi layer), two convex areas walking a shared edge in opposite directions lie on either side of its line and are
dropped too (edges matched by one sort, as for rook contiguity). The rest are tested by one DE-9IM pattern
(interiors intersect), in chunks on every core (GEOS releases the GIL), and only the pairs that do intersect are
measured. Queries go in pieces bounded by a grid count of each box's pairs, so hostile layers (stacked or crossing
boxes) cannot exhaust memory, with cancellation points between them. Pure computation: no HTTP, no storage.

Where it runs: :func:`spatial.dataset.validate` (so every file loaded, and every dataset built in memory, unless a
caller opts out) records on the dataset which shapes it checked (:func:`mark_checked`); whatever stores a dataset for
publication calls :func:`check_dataset`, which costs an identity test for a checked dataset and the full check for any
other, so the check can be neither skipped nor run twice. Harmonisation checks its target layer
(:mod:`spatial.change.harmonize`), whose areas receive the published counts.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import shapely

from .cancel import checkpoint
from .disclosure_forest import TOL
from .errors import Problem, ValidationError, problem

INTERIORS_MEET = "T********"
CHUNK = 50_000  # candidate pairs per task: below that, threads cost more than they save
MAX_FOUND = 1_000  # measuring stops here: a file this broken needs fixing, not a complete list
PAIRS_PER_QUERY = 4_000_000  # box pairs a tree query may return at once (64 MB of indices)
HEAVY = 64  # vertices from which a shape is prepared (indexed once) for its tests
SHOWN = 5  # pairs named in the message


@dataclass
class Overlaps:
    """Pairs of areas (row numbers, ``first < second``) overlapping by ``share`` of the smaller one, > ``TOL``."""

    first: np.ndarray
    second: np.ndarray
    share: np.ndarray
    complete: bool = True  # False: measuring stopped at MAX_FOUND pairs

    def __len__(self) -> int:
        return len(self.first)


def overlapping_pairs(geoms, tol: float = TOL) -> Overlaps:
    """The pairs of ``geoms`` (valid polygons; None is skipped) whose overlap exceeds ``tol`` of the smaller one."""
    geoms = np.asarray(geoms, dtype=object)
    # a shape of many vertices is indexed once, not again for each neighbour tested against it (50x at 50,000)
    heavy = geoms[shapely.get_num_coordinates(geoms) > HEAVY]
    heavy = heavy[~shapely.is_prepared(heavy)]  # the caller's prepared shapes stay prepared
    shapely.prepare(heavy)
    try:
        return _measure(geoms, tol)
    finally:
        shapely.destroy_prepared(heavy)  # the caller's shapes as they came


def _measure(geoms: np.ndarray, tol: float) -> Overlaps:
    found, total = ([], [], []), 0
    bounds, area, vertices = shapely.bounds(geoms), shapely.area(geoms), shapely.get_num_coordinates(geoms)
    tree = shapely.STRtree(geoms)  # None and empty geometries are not in the tree
    separated = None
    for rows in _row_chunks(bounds):
        a, b = _candidates(tree, geoms[rows], rows, bounds, area, tol)
        if len(a) > CHUNK or separated is not None:  # many pairs (a Voronoi layer): most are convex neighbours
            separated = _separated_neighbours(geoms) if separated is None else separated
            keep = ~_member(a * len(geoms) + b, separated)
            a, b = a[keep], b[keep]
        for start in range(0, len(a), 4 * CHUNK):  # a few chunks a core per round, then a cancellation point
            checkpoint()
            ia, ib = a[start : start + 4 * CHUNK], b[start : start + 4 * CHUNK]
            first, second, order = _heavier_first(ia, ib, vertices)
            meet = np.empty(len(ia), bool)
            meet[order] = _threads(_interiors_meet, geoms, first, second)
            ia, ib = ia[meet], ib[meet]
            for at in range(0, len(ia), MAX_FOUND):  # measured a slice at a time: a stack of copies stops soon
                pa, pb = ia[at : at + MAX_FOUND], ib[at : at + MAX_FOUND]
                share = _share(geoms, pa, pb)
                keep = share > tol
                for out, part in zip(found, (pa[keep], pb[keep], share[keep]), strict=True):
                    out.append(part)
                total += int(keep.sum())
                if total >= MAX_FOUND:
                    return _found(found, complete=False)
    return _found(found, complete=True)


def _found(found, complete: bool) -> Overlaps:
    first, second, share = (np.concatenate(x) if x else np.zeros(0) for x in found)
    return Overlaps(first.astype(np.int64), second.astype(np.int64), share.astype(float), complete)


def _candidates(tree, chunk, rows, bounds, area, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``a < b`` (``a`` in ``rows``, sorted) whose boxes overlap by more than ``tol`` of the smaller area:
    others cannot overlap by more (a grid's neighbours: boxes that only touch)."""
    a, b = tree.query(chunk)
    a = rows[a]
    keep = a < b
    a, b = a[keep], b[keep]
    w = np.minimum(bounds[a, 2], bounds[b, 2]) - np.maximum(bounds[a, 0], bounds[b, 0])
    h = np.minimum(bounds[a, 3], bounds[b, 3]) - np.maximum(bounds[a, 1], bounds[b, 1])
    keep = np.clip(w, 0, None) * np.clip(h, 0, None) > tol * np.minimum(area[a], area[b])
    return a[keep], b[keep]


def _separated_neighbours(geoms: np.ndarray) -> np.ndarray:
    """Sorted keys ``a * n + b`` (a < b) of convex polygons sharing a ring edge in opposite directions: the line of
    that edge has one on each side, so their interiors cannot meet (no shape test needed). Convex up to a turn of
    1e-9 of the edges' lengths: what that lets through is far below any tolerance."""
    from .weights import _group_equal

    n = len(geoms)
    rows = np.flatnonzero((shapely.get_type_id(geoms) == 3) & (shapely.get_num_interior_rings(geoms) == 0))
    xy, ring = shapely.get_coordinates(geoms[rows], return_index=True)
    at = np.flatnonzero(ring[:-1] == ring[1:])  # each edge: from vertex at to at + 1
    owner, edge = ring[at], xy[at + 1] - xy[at]
    local = xy - xy[_run_start(ring)]  # from each ring's first vertex: an exact sign of its area
    ccw = np.bincount(owner, local[at, 0] * local[at + 1, 1] - local[at + 1, 0] * local[at, 1], len(rows)) > 0
    last = np.r_[owner[1:] != owner[:-1], True]
    after = np.where(last, _run_start(owner), np.arange(len(at)) + 1)  # the ring's next edge
    turn = (edge[:, 0] * edge[after, 1] - edge[:, 1] * edge[after, 0]) * np.where(ccw[owner], 1, -1)
    size = np.hypot(edge[:, 0], edge[:, 1]) * np.hypot(edge[after, 0], edge[after, 1])
    convex = np.bincount(owner, weights=turn < -1e-9 * size, minlength=len(rows)) == 0
    keep = convex[owner]
    at, turned, owner = at[keep], ~ccw[owner[keep]], rows[owner[keep]]
    (ax, ay), (bx, by) = xy[at].T, xy[at + 1].T
    flip = (ax > bx) | ((ax == bx) & (ay > by))
    cols = [np.where(flip, bx, ax), np.where(flip, by, ay), np.where(flip, ax, bx), np.where(flip, ay, by)]
    order, starts = _group_equal(cols)
    first = starts[:-1][np.diff(starts) == 2]  # edges shared by exactly two polygons
    e1, e2 = order[first], order[first + 1]
    way = flip != turned  # the edge's direction along its polygon taken counter-clockwise
    ok = (way[e1] != way[e2]) & (owner[e1] != owner[e2])
    lo, hi = np.minimum(owner[e1], owner[e2])[ok], np.maximum(owner[e1], owner[e2])[ok]
    keys = np.sort(lo.astype(np.int64) * n + hi)
    return keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys


def _run_start(sorted_ids: np.ndarray) -> np.ndarray:
    """Per element of a sorted array, the position where its run of equal values starts."""
    start = np.r_[True, sorted_ids[1:] != sorted_ids[:-1]] if len(sorted_ids) else np.zeros(0, bool)
    return np.flatnonzero(start)[np.cumsum(start) - 1]


def _member(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    if not len(sorted_keys):
        return np.zeros(len(keys), bool)
    at = np.searchsorted(sorted_keys, keys)
    return (at < len(sorted_keys)) & (sorted_keys[np.minimum(at, len(sorted_keys) - 1)] == keys)


def _heavier_first(a: np.ndarray, b: np.ndarray, vertices: np.ndarray):
    """The pairs with the shape of more vertices first (the prepared side of a test), sorted by it, and the order
    that sorted them."""
    swap = vertices[b] > vertices[a]
    first, second = np.where(swap, b, a), np.where(swap, a, b)
    order = np.argsort(first, kind="stable") if swap.any() else np.arange(len(a))
    return first[order], second[order], order


def _row_chunks(bounds: np.ndarray, budget: int = PAIRS_PER_QUERY):
    """Rows in runs meeting at most about ``budget`` boxes together (one row alone: at most every area), so a layer
    of stacked or long crossing boxes (hostile: pairs grow as n²) is queried in pieces that fit in memory, each
    followed by a cancellation point, never in one query."""
    cum = np.cumsum(_pairs_bound(bounds))
    cuts = np.searchsorted(cum, np.arange(1, int(cum[-1] // budget) + 1) * budget, side="right") if len(cum) else []
    edges = np.unique(np.concatenate([[0], cuts, [len(bounds)]])).astype(np.int64)
    for start, end in zip(edges[:-1], edges[1:], strict=True):
        yield np.arange(start, end)


def _pairs_bound(bounds: np.ndarray) -> np.ndarray:
    """Per row, at least how many boxes meet its box (itself included): the boxes sharing a cell of a uniform grid
    with it, since two boxes that meet share a cell. Cells of a typical box's size, doubled until the boxes cover
    a few cells each on average (a box over many cells counts its neighbours once per cell: a looser bound)."""
    ok = np.isfinite(bounds).all(axis=1)
    out = np.zeros(len(bounds))
    if not ok.any():
        return out
    b = bounds[ok] - np.tile(bounds[ok, :2].min(axis=0), 2)  # from the lower left corner
    span = float(max(b[:, 2].max(), b[:, 3].max()))
    size = float(np.median(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])))
    size = max(size, span / 2**30, np.finfo(float).tiny)  # cell indices below 2^30: keys fit in 64 bits
    while True:
        g = np.floor(b / size).astype(np.int64)
        cover = (g[:, 2] - g[:, 0] + 1) * (g[:, 3] - g[:, 1] + 1)
        if cover.sum() <= 8 * len(b) + 64:
            break
        size *= 2
    rep = np.repeat(np.arange(len(b)), cover)
    off = np.arange(len(rep)) - np.repeat(np.cumsum(cover) - cover, cover)
    width = (g[:, 2] - g[:, 0] + 1)[rep]
    key = (g[rep, 0] + off % width) * (int(g[:, 3].max()) + 1) + g[rep, 1] + off // width
    if key.max() < 8 * len(key) + 64:  # few cells: counted directly
        per_cell = np.bincount(key)[key]
    else:
        _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        per_cell = counts[inverse]
    out[ok] = np.bincount(rep, weights=per_cell, minlength=len(b))
    return out


def _threads(fn, geoms: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``fn(geoms, a, b)`` over chunks on every core; chunks cut between runs of equal ``a`` (sorted), so a prepared
    shape (whose index GEOS builds lazily, unlocked) is never the prepared side in two threads at once."""
    cores = os.cpu_count() or 1
    if cores == 1 or len(a) <= CHUNK:
        return fn(geoms, a, b)
    cuts = np.unique(np.append(np.searchsorted(a, a[np.arange(0, len(a), CHUNK)], side="left"), len(a)))
    with ThreadPoolExecutor(min(cores, len(cuts) - 1)) as pool:
        parts = pool.map(lambda s, e: fn(geoms, a[s:e], b[s:e]), cuts[:-1], cuts[1:])
        return np.concatenate(list(parts))


def _interiors_meet(geoms: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return shapely.relate_pattern(geoms[a], geoms[b], INTERIORS_MEET)
    except shapely.errors.GEOSException:  # a topology error on a damaged shape: test repaired copies
        return shapely.relate_pattern(shapely.make_valid(geoms[a]), shapely.make_valid(geoms[b]), INTERIORS_MEET)


def _share(geoms: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Area of each pair's intersection over the smaller area (one inside the other: no overlay needed)."""
    ga, gb = geoms[a], geoms[b]
    area_a, area_b = shapely.area(ga), shapely.area(gb)
    inter = np.full(len(a), np.nan)
    for inner, outer, size in ((ga, gb, area_a), (gb, ga, area_b)):
        inside = np.isnan(inter) & shapely.contains_properly(outer, inner)
        inter[inside] = size[inside]
    rest = np.flatnonzero(np.isnan(inter))
    try:
        inter[rest] = shapely.area(shapely.intersection(ga[rest], gb[rest]))
    except shapely.errors.GEOSException:
        inter[rest] = shapely.area(shapely.intersection(shapely.make_valid(ga[rest]), shapely.make_valid(gb[rest])))
    small = np.minimum(area_a, area_b)
    return np.divide(inter, small, out=np.zeros(len(a)), where=small > 0)


def overlap_problem(found: Overlaps, ids, tol: float = TOL) -> Problem | None:
    """The refusal naming the first pairs (ids and share) and what to do; None when nothing overlaps."""
    if not len(found):
        return None
    ids = np.asarray(ids, dtype=object)
    order = np.lexsort((found.second, found.first))
    shown = "; ".join(
        f"{ids[found.first[k]]} and {ids[found.second[k]]} ({_percent(found.share[k])} of the smaller)"
        for k in order[:SHOWN]
    )
    count = f"{len(found):,}{'' if found.complete else ' or more'}"
    what = "pair of areas overlaps" if len(found) == 1 else "pairs of areas overlap"
    named = dict.fromkeys(str(ids[i]) for k in order for i in (found.first[k], found.second[k]))
    refusal = problem(
        "overlapping_areas",
        f"{count} {what} by more than {tol:.0%} of the smaller area: {shown}"
        f"{' …' if len(found) > SHOWN else ''}. A dataset's areas must not overlap: a larger area minus the "
        "smaller ones inside it would give away counts that are withheld. Upload each level of a hierarchy as "
        "its own dataset — they are then audited together — and remove repeated areas; slivers up to "
        f"{tol:.0%} of the smaller area (digitising) are accepted",
        list(named),
    )
    pairs = [[str(ids[found.first[k]]), str(ids[found.second[k]])] for k in order[:100]]
    refusal.extra = {"pairs": [{"ids": p, "share": round(float(found.share[k]), 4)} for p, k in zip(pairs, order)]}
    refusal.extra["n_pairs"] = len(found)
    return refusal


def refusal_of(geoms, ids, subject: str = "", usable=None, invalid=None) -> Problem | None:
    """:func:`overlap_problem` for any layer: missing, empty and non-polygonal shapes left out, invalid ones measured
    on repaired copies. ``subject`` starts the message (e.g. "The target layer: "). ``usable`` and ``invalid``:
    the shapes to measure and those of them to repair, when the caller knows them already (validation)."""
    geoms = np.array(geoms, dtype=object)  # a copy: repairs stay here
    if usable is None:
        usable = np.isin(shapely.get_type_id(geoms), (3, 6)) & ~shapely.is_empty(geoms)
    geoms[~usable] = None
    bad = usable & (~shapely.is_valid(geoms) if invalid is None else invalid)
    if bad.any():
        geoms[bad] = shapely.make_valid(geoms[bad])
    refusal = overlap_problem(overlapping_pairs(geoms), np.asarray(ids, dtype=object))
    if refusal is not None and subject:
        refusal.message = subject + refusal.message
    return refusal


def mark_checked(ds) -> None:
    """Record that ``ds``'s shapes passed the check: the shape objects themselves (immutable), so a dataset made
    from them by ``dataclasses.replace`` (a subset, new counts joined on the same areas) stays checked and one with
    any other shape does not."""
    ds.overlaps_checked = np.array(ds.areas.geometry.values, dtype=object)  # a copy: later edits of the frame miss it


def is_checked(ds) -> bool:
    """Whether every shape of ``ds`` is one of the shapes checked together, each used once (a shape repeated would
    be two areas overlapping fully)."""
    checked = getattr(ds, "overlaps_checked", None)
    if checked is None:
        return False
    now = np.sort(_object_ids(np.asarray(ds.areas.geometry.values, dtype=object)))  # sorted: np.unique is 50x slower
    if (now[1:] == now[:-1]).any():
        return False
    return bool(_member(now, np.sort(_object_ids(checked))).all())


def check_dataset(ds) -> None:
    """Refuse ``ds`` (ValidationError ``overlapping_areas``) if its areas overlap each other; free for a dataset
    whose shapes :func:`spatial.dataset.validate` checked. Call before storing or publishing a dataset."""
    if is_checked(ds):
        return
    refusal = refusal_of(ds.areas.geometry.values, ds.ids)
    if refusal is not None:
        raise ValidationError(refusal)
    mark_checked(ds)


def _object_ids(geoms: np.ndarray) -> np.ndarray:
    # the objects held by the dataset's marker stay alive, so their ids cannot be reused by other shapes
    return np.fromiter(map(id, geoms), dtype=np.uint64, count=len(geoms))


def _percent(share: float) -> str:
    return f"{share:.0%}" if share >= 0.1 else f"{share:.1%}"
