"""The algebra of nested areas for :mod:`spatial.disclosure_linked`: which withheld areas the published ones determine,
and which new area to withhold to stop it.

Nodes are areas (coinciding areas of several datasets merged), each with the smallest area containing it as parent.
A node whose children cover it has an equation ``node = Σ children``. A withheld node is an unknown in at most two
equations (its own, its parent's): an edge between two equation vertices, or a free end when it has only one. Cutting
an edge splits its tree of unknowns in two; it is determined (the equations on one side sum to it) exactly when one
side holds no free end, and a free end is determined when it is its tree's only one.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .disclosure import small_cells

TOL = 0.01


def _cyclic(parent: np.ndarray) -> bool:
    """Whether following ``parent`` (-1: none) ever goes round: an ancestor further up than there are nodes."""
    jump = parent.copy()
    for _ in range(max(len(parent), 1).bit_length() + 1):  # jump = parent applied 2^k times
        jump = np.where(jump >= 0, jump[np.maximum(jump, 0)], -1)
    return bool((jump >= 0).any())


class _Forest:
    def __init__(self, rel, layers):
        n = self.n = rel.n
        self.old_pub, self.old_hid, self.new_pub, self.new_pri = (np.zeros(n, bool) for _ in range(4))
        for k, layer in enumerate(layers):
            nodes = rel.members[k]
            ok = nodes >= 0
            nd, hid = nodes[ok], layer.hidden[ok]
            (self.new_pub if k == 0 else self.old_pub)[nd[~hid]] = True
            (self.new_pri if k == 0 else self.old_hid)[nd[hid]] = True
        nest = rel.child != rel.container  # areas merged into one node (a chain of near-equal ones) nest in no other
        child, container = rel.child[nest], rel.container[nest]
        order = np.lexsort((rel.area[container], child))  # per child, the smallest container first
        c, p = child[order], container[order]
        first = np.r_[True, c[1:] != c[:-1]] if len(c) else np.zeros(0, bool)
        parent = self.parent = np.full(n, -1)
        parent[c[first]] = p[first]
        kids = np.flatnonzero(parent >= 0)
        cover = np.bincount(parent[kids], weights=rel.area[kids], minlength=n)
        self.covered = cover >= (1 - TOL) * rel.area
        self.has_up = (parent >= 0) & self.covered[np.maximum(parent, 0)]
        by_parent = kids[np.argsort(parent[kids], kind="stable")]
        self.kid_ptr = np.searchsorted(parent[by_parent], np.arange(n + 1))
        self.kids = by_parent
        self.depth = np.zeros(n, int)
        self.cyclic = _cyclic(parent)  # containment going round (merged near-equal areas): the caller refuses
        up = np.full(n, -1) if self.cyclic else parent.copy()
        while (up >= 0).any():  # a chain holds at most one area per dataset
            self.depth[up >= 0] += 1
            up = np.where(up >= 0, parent[np.maximum(up, 0)], -1)
        self._counts(rel, layers)
        self.stuck = False

    def _counts(self, rel, layers) -> None:
        """True counts per node on the new layer's columns (NaN where a node's dataset lacks one), and weights."""
        cols = list(layers[0].columns)
        self.threshold = max([layer.threshold for layer in layers] + [0])
        self.counts = np.full((self.n, len(cols)), np.nan)
        for k in range(len(layers) - 1, -1, -1):  # the new layer's own counts win where areas coincide
            layer, nodes = layers[k], rel.members[k]
            if layer.counts is None or not len(cols):
                continue
            have = {c: i for i, c in enumerate(layer.columns)}
            ok = nodes >= 0
            for j, col in enumerate(cols):
                if col in have:
                    self.counts[nodes[ok], j] = layer.counts[ok, have[col]]
        self.weight = np.nan_to_num(self.counts[:, 0]) if len(cols) else np.zeros(self.n)

    def children(self, v: int) -> np.ndarray:
        return self.kids[self.kid_ptr[v] : self.kid_ptr[v + 1]]

    # -- which unknowns the equations determine ---------------------------------------------------------------------
    def solve(self, unknown: np.ndarray) -> dict:
        n, parent = self.n, self.parent
        own, up = unknown & self.covered, unknown & self.has_up
        full = own & up
        half_at = np.where(own & ~up, np.arange(n), np.where(up & ~own, parent, -1))
        fe = np.flatnonzero(full)
        g = coo_matrix((np.ones(len(fe)), (fe, parent[fe])), shape=(n, n))
        _, comp = connected_components(g, directed=False)
        half = np.flatnonzero(half_at >= 0)
        free = np.bincount(half_at[half], minlength=n).astype(float)
        total = np.bincount(comp, weights=free)
        sub = free.copy()
        for d in range(int(self.depth.max(initial=0)), 0, -1):  # children's sides before their parents'
            e = fe[self.depth[fe] == d]
            np.add.at(sub, parent[e], sub[e])
        det = np.zeros(n, bool)
        det[fe] = (sub[fe] == 0) | (total[comp[fe]] - sub[fe] == 0)
        det[half] = total[comp[half_at[half]]] == 1
        vertices = np.flatnonzero(self.covered)
        vertices = vertices[np.argsort(comp[vertices], kind="stable")]  # grouped by tree, for _side
        bounds = np.searchsorted(comp[vertices], np.arange(comp.max(initial=-1) + 2))
        st = {"det": det, "comp": comp, "sub": sub, "total": total, "full": full, "half_at": half_at}
        return st | {"vertices": vertices, "bounds": bounds}

    @staticmethod
    def _tree(st: dict, c: int) -> np.ndarray:
        """The equation vertices of tree ``c``."""
        return st["vertices"][st["bounds"][c] : st["bounds"][c + 1]]

    def determined(self, known: np.ndarray) -> np.ndarray:
        """Known or solvable from the known nodes."""
        return known | self.solve(~known)["det"]

    # -- one round of secondary suppression ------------------------------------------------------------------------
    def fixes(self, targets: np.ndarray, sec: np.ndarray) -> np.ndarray:
        """New nodes to withhold this round (none: every target is safe)."""
        known = self.old_pub | (self.new_pub & ~sec)
        st = self.solve(~known)
        eligible = self.new_pub & ~self.old_pub & ~sec
        add = np.zeros(self.n, bool)
        add[targets & known] = True  # a withheld area published again as a new area of the same shape
        for t in np.flatnonzero(targets & st["det"]):
            c = self._complement(t, st, eligible)
            add[max(c, 0)] |= c >= 0
            self.stuck |= c < 0  # no new area in its equations: solvable from published tables alone
        if add.any():
            return add
        return self._small_unions(known | st["det"], ~known & ~st["det"], eligible)

    def _side(self, t: int, st: dict) -> np.ndarray:
        """The equation vertices on the side of unknown ``t`` that holds no free end."""
        comp, full = st["comp"], st["full"]
        if not full[t]:
            return self._tree(st, comp[st["half_at"][t]])
        below, stack = [], [t]
        while stack:  # t's subtree along unknown edges
            v = stack.pop()
            below.append(v)
            stack.extend(int(c) for c in self.children(v) if full[c])
        if st["sub"][t] == 0:
            return np.asarray(below)
        return np.setdiff1d(self._tree(st, comp[t]), below)

    def _complement(self, t: int, st: dict, eligible: np.ndarray) -> int:
        """The new area to withhold so ``t`` reaches a free end: one in an equation of its closed side, preferring
        one that brings a free end, then the largest count."""
        side = self._side(t, st)
        own = side[eligible[side]]  # the side's own areas: their other equation is their parent's
        kids = np.concatenate([self.children(v) for v in side]) if len(side) else np.zeros(0, int)
        kids = kids[eligible[kids]]  # their pieces: the other equation is the piece's own
        other = np.concatenate(
            [np.where(self.has_up[own], self.parent[own], -1), np.where(self.covered[kids], kids, -1)]
        )
        cand = np.concatenate([own, kids])
        if not len(cand):
            return -1
        free = (other < 0) | (st["total"][st["comp"][np.maximum(other, 0)]] >= 1)
        best = np.lexsort((-cand, self.weight[cand], free))[-1]
        return int(cand[best])

    def _small_unions(self, known: np.ndarray, open_: np.ndarray, eligible: np.ndarray) -> np.ndarray:
        """A known area minus its known pieces gives the withheld pieces' sum: withhold more where it is small."""
        add = np.zeros(self.n, bool)
        if not self.counts.shape[1] or self.threshold <= 1:
            return add
        kids = self.kids[open_[self.kids]]
        kids = kids[known[self.parent[kids]] & self.covered[self.parent[kids]]]
        if not len(kids):
            return add
        sums = np.zeros((self.n, self.counts.shape[1]))
        np.add.at(sums, self.parent[kids], self.counts[kids])
        vs = np.unique(self.parent[kids])
        small = small_cells(sums[vs], self.threshold).any(axis=1)
        for v in vs[small]:
            cand = self.children(v)
            cand = cand[eligible[cand] & known[cand]]
            if len(cand):
                fixed = ~small_cells(sums[v] + self.counts[cand], self.threshold).any(axis=1)
                add[cand[np.lexsort((self.weight[cand], fixed))[-1]]] = True
            elif eligible[v]:
                add[v] = True
        return add
