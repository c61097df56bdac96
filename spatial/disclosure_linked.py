"""Disclosure across datasets of one date: secondary suppression so nested geographies cannot be differenced.

Each dataset is protected alone (:func:`spatial.disclosure.protect`). Two datasets counting the same people on
different areas (planning areas and forecast areas of one census) are linked: where an area of one lies inside an
area of the other, the published counts form equations (coarse = sum of its fine pieces), and a withheld count can
be solved from them (a coarse total minus the visible pieces). This module audits a new dataset against the
published ones of its date and says which of its areas must also be withheld (secondary suppression) so that no
withheld area of any of them can be solved; the published datasets are never changed.

The model (as an attacker solving linear equations). Areas are related geometrically, by the share of the
smaller area's surface inside the larger (never by ids): ``> 1 − TOL`` nested (both ways: the same area),
``< TOL`` unrelated (slivers from digitising or reprojecting), anything between a partial overlap. Nested areas
form a forest (each area's parent: the smallest area containing it). An area whose children cover it (up to
``TOL``) gives one equation, ``area = Σ children``; an area not covered has an unknown remainder and no equation.
Every area is one variable, in at most two equations (its own and its parent's): the unknowns (withheld areas) are
the edges of a forest whose vertices are the equations, and an unknown with only one equation is a free end. An
unknown is determined by the published values exactly when it does not lie on a path between two free ends: cutting
it leaves a side whose equations sum to its value (linear algebra on this structure, in linear time; checked against
a rank test in the tests). Partial overlaps make that sum inexact but estimable, so a partial overlap near a
withheld area is refused.

The algorithm is the back-tracking of τ-ARGUS's linked tables, restricted to the new table: targets are the
withheld areas not already solvable before the upload; while one is solvable, withhold the new area (largest count
first) that opens its equations to a free end; repeat to the fixed point. It also withholds where a published area
minus its visible pieces leaves a small count for the withheld pieces together (the suppress rule's small cells, on
that union). Pure computation: no HTTP, no storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .cancel import checkpoint
from .disclosure_forest import TOL, _Forest

MAX_ROUNDS = 200


@dataclass
class Layer:
    """One dataset of the date as published: its areas (one metric CRS for all layers) and which are withheld.

    ``counts`` (total first, then groups; true counts) and ``threshold`` serve the small-union rule; ``weight``
    orders complementary suppression (larger first: a wider interval for the hidden piece)."""

    name: str
    geometry: np.ndarray
    hidden: np.ndarray
    counts: np.ndarray | None = None
    threshold: int = 0
    columns: tuple[str, ...] = ()

    def __post_init__(self):
        self.geometry = np.asarray(self.geometry, dtype=object)
        self.hidden = np.asarray(self.hidden, dtype=bool)


@dataclass
class Audit:
    withhold: np.ndarray  # per area of the new layer: withheld by this audit (beyond its own rule)
    linked: list[str] = field(default_factory=list)  # layers whose areas nest with or overlap the new one
    refused: dict | None = None  # {"reason": ..., "with": [...]} when the new layer cannot be published safely
    stats: dict = field(default_factory=dict)


def audit(new: Layer, published: list[Layer], *, can_withhold: bool = True) -> Audit:
    """Which areas of ``new`` to withhold so no withheld area of ``new`` or ``published`` can be solved.

    ``can_withhold`` False (the new layer is perturbed or unprotected): refuse instead of withholding."""
    layers = [new, *published]
    rel = _relate(layers)
    out = Audit(withhold=np.zeros(len(new.geometry), bool), stats={"pairs": rel.pairs})
    out.linked = sorted({layers[j].name for j in rel.linked_layers if j > 0})
    if rel.n == 0:
        return out
    f = _Forest(rel, layers)
    if f.cyclic:  # no forest to reason on: refuse rather than publish (or loop)
        out.refused = {"reason": "complex", "with": out.linked}
        return out
    targets = (f.old_hid | f.new_pri) & ~f.determined(f.old_pub)
    out.stats["targets"] = int(targets.sum())
    bad = _partial_near(rel, targets)
    if len(bad):
        where = [k for k, nodes in enumerate(rel.members) if np.isin(nodes, bad).any()]
        out.refused = {"reason": "partial", "with": sorted({layers[k].name for k in where if k > 0})}
        out.refused["areas"] = np.flatnonzero(np.isin(rel.members[0], bad))  # the new areas that partly overlap
        return out
    sec = np.zeros(f.n, bool)
    for rounds in range(1, MAX_ROUNDS + 1):  # noqa: B007 (the number of rounds is reported)
        checkpoint()
        add = f.fixes(targets, sec)
        if f.stuck:  # cannot happen (targets are not solvable before the upload); refuse rather than publish
            out.refused = {"reason": "complex", "with": out.linked}
            return out
        if not add.any():
            break
        if not can_withhold:
            out.refused = {"reason": "solvable", "with": out.linked}
            return out
        sec |= add
    else:  # every round withholds more; this many rounds means a structure too tangled to protect here
        out.refused = {"reason": "complex", "with": out.linked}
        return out
    out.stats["rounds"] = rounds
    label = rel.label[: len(new.geometry)]
    out.withhold = (label >= 0) & sec[np.maximum(label, 0)] & ~new.hidden
    out.stats["withheld"] = int(out.withhold.sum())
    return out


# -- geometry: which areas nest, coincide or partly overlap -------------------------------------------------------
@dataclass
class _Relations:
    layer: np.ndarray  # per node: its layer
    label: np.ndarray  # per area (all layers, concatenated): its node (areas that coincide share one); -1 unrelated
    area: np.ndarray  # per node
    child: np.ndarray  # nested pairs, node ids
    container: np.ndarray
    partial: np.ndarray  # (k, 2) node ids that partly overlap
    members: list  # per layer: the node of each area
    linked_layers: set
    pairs: int
    n: int


def _pairs(a: np.ndarray, b: np.ndarray):
    """Area of intersection of each pair of ``a`` and ``b`` areas whose interiors may meet enough to matter."""
    empty = np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    if not len(a) or not len(b):
        return empty
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = shapely.total_bounds(a), shapely.total_bounds(b)
    if ax0 > bx1 or bx0 > ax1 or ay0 > by1 or by0 > ay1:
        return empty
    ia, ib = shapely.STRtree(b).query(a)  # boxes that meet
    # the overlap of the boxes bounds the overlap of the areas: at most TOL of the smaller one is unrelated
    ba, bb = shapely.bounds(a)[ia], shapely.bounds(b)[ib]
    w = np.minimum(ba[:, 2], bb[:, 2]) - np.maximum(ba[:, 0], bb[:, 0])
    h = np.minimum(ba[:, 3], bb[:, 3]) - np.maximum(ba[:, 1], bb[:, 1])
    small = np.minimum(shapely.area(a)[ia], shapely.area(b)[ib])
    keep = np.clip(w, 0, None) * np.clip(h, 0, None) > TOL * small
    ia, ib = ia[keep], ib[keep]
    ga, gb = a[ia], b[ib]
    shapely.prepare(ga), shapely.prepare(gb)
    inter = np.full(len(ia), np.nan)
    for inner, outer in ((ga, gb), (gb, ga)):  # one inside the other, the common case: no overlay needed
        inside = np.isnan(inter) & shapely.contains_properly(outer, inner)
        inter[inside] = shapely.area(inner[inside])
    rest = np.flatnonzero(np.isnan(inter))
    for start in range(0, len(rest), 20_000):
        checkpoint()
        part = rest[start : start + 20_000]
        try:
            inter[part] = shapely.area(shapely.intersection(ga[part], gb[part]))
        except shapely.errors.GEOSException:  # a topology error: measure on repaired copies
            inter[part] = shapely.area(shapely.intersection(shapely.make_valid(ga[part]), shapely.make_valid(gb[part])))
    return ia, ib, inter


def _share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    return np.divide(part, whole, out=np.zeros(len(part)), where=whole > 0)


def _relate(layers: list[Layer]) -> _Relations:
    sizes = [len(layer.geometry) for layer in layers]
    offset = np.concatenate([[0], np.cumsum(sizes)])
    area_all = np.concatenate([shapely.area(layer.geometry) for layer in layers]) if sum(sizes) else np.zeros(0)
    us, vs, inters, linked = [], [], [], set()
    for i in range(len(layers)):
        for j in range(i + 1, len(layers)):
            ia, ib, inter = _pairs(layers[i].geometry, layers[j].geometry)
            u, v = ia + offset[i], ib + offset[j]
            big = np.maximum(_share(inter, area_all[u]), _share(inter, area_all[v]))
            keep = big > TOL
            if keep.any():
                linked |= {i, j}
            us.append(u[keep]), vs.append(v[keep]), inters.append(inter[keep])
    u, v, inter = (np.concatenate(x) if x else np.zeros(0) for x in (us, vs, inters))
    u, v = u.astype(int), v.astype(int)
    if not len(u):
        none = np.full(len(area_all), -1)
        members = [none[offset[k] : offset[k + 1]] for k in range(len(layers))]
        empty = np.zeros(0, int)
        return _Relations(none, none, np.zeros(0), empty, empty, np.zeros((0, 2), int), members, linked, 0, 0)
    fu, fv = _share(inter, area_all[u]), _share(inter, area_all[v])
    same = (fu >= 1 - TOL) & (fv >= 1 - TOL)
    nested = (np.maximum(fu, fv) >= 1 - TOL) & ~same
    partial = np.maximum(fu, fv) < 1 - TOL
    # nodes: related areas, those that coincide merged into one
    involved = np.unique(np.concatenate([u, v]))
    pos = np.full(len(area_all), -1)
    pos[involved] = np.arange(len(involved))
    g = coo_matrix((np.ones(int(same.sum())), (pos[u[same]], pos[v[same]])), shape=(len(involved),) * 2)
    n, comp = connected_components(g, directed=False)
    label = np.full(len(area_all), -1)
    label[involved] = comp
    area = np.zeros(n)
    np.maximum.at(area, comp, area_all[involved])
    layer_of = np.repeat(np.arange(len(layers)), sizes)
    child = np.where(fu >= fv, u, v)[nested]
    container = np.where(fu >= fv, v, u)[nested]
    return _Relations(
        layer=layer_of,
        label=label,
        area=area,
        child=label[child],
        container=label[container],
        partial=np.stack([label[u[partial]], label[v[partial]]], axis=1) if partial.any() else np.zeros((0, 2), int),
        members=[label[offset[k] : offset[k + 1]] for k in range(len(layers))],
        linked_layers=linked,
        pairs=len(u),
        n=n,
    )


def _partial_near(rel: _Relations, targets: np.ndarray) -> np.ndarray:
    """Nodes that partly overlap another in a connected group of related areas holding a target."""
    if not len(rel.partial):
        return np.zeros(0, int)
    edges = np.concatenate([np.stack([rel.child, rel.container], axis=1), rel.partial])
    g = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(rel.n, rel.n))
    _, comp = connected_components(g, directed=False)
    hot = np.zeros(comp.max() + 1, bool)
    hot[comp[targets]] = True
    return np.unique(rel.partial[hot[comp[rel.partial[:, 0]]]])
