"""Spatial two-group indices: each is a factory ``f(ctx, **params)`` that does the geometry work once
(:class:`~spatial.indices.spatial_context.SpatialContext`) and returns a batched evaluator
``(x, t) -> value`` over arrays of shape ``(..., n)``. Sparse throughout.

Equal to pysal ``segregation`` (to 1e-9 on the same CRS) for: spatial_dissimilarity,
boundary_spatial_dissimilarity, delta, absolute/relative concentration and centralization.

Deliberate difference: the distance-decay indices (spatial_proximity, relative_clustering,
distance_decay_isolation, distance_decay_exposure) use the published proximity
``c_ij = exp(−d_ij)`` with d in kilometres and ``c_ii = exp(−√(0.6 a_i))`` (Massey & Denton 1988,
p. 297; White 1983). pysal instead divides each distance by its column sum and uses
``1 − exp(−d)``, which grows with distance and depends on how many areas the city has.
"""

from __future__ import annotations

import numpy as np

from . import register
from .aspatial import _share, dissimilarity


def _contiguity_term(p, rows, cols, w):
    """Σ_ij c_ij |p_i − p_j| / Σ_ij c_ij over the sparse pairs."""
    total = w.sum()
    if total == 0:
        return np.zeros(p.shape[:-1])
    return (np.abs(p[..., rows] - p[..., cols]) * w).sum(axis=-1) / total


@register(
    "spatial_dissimilarity",
    "two_group",
    spatial=True,
    pysal="SpatialDissim",
    reference="Morrill (1991), 'On the measure of geographic segregation', Geography Research Forum 11",
)
def spatial_dissimilarity(ctx):
    """SD = D − Σ c_ij |p_i − p_j| / Σ c_ij with c binary queen contiguity."""
    rows, cols = ctx.queen
    w = np.ones(len(rows))

    def evaluate(x, t):
        return dissimilarity(x, t) - _contiguity_term(_share(x, t), rows, cols, w)

    return evaluate


@register(
    "boundary_spatial_dissimilarity",
    "two_group",
    spatial=True,
    pysal="BoundarySpatialDissim",
    reference="Wong (1993), 'Spatial indices of segregation', Urban Studies 30(3)",
    standardize=True,
)
def boundary_spatial_dissimilarity(ctx, standardize=True):
    """D(w) = D − Σ c_ij |p_i − p_j| / Σ c_ij with c the shared boundary length, row-standardised by default
    (each area's boundary weights sum to 1, as pysal's class does)."""
    rows, cols, lengths = ctx.boundary
    if standardize:
        row_sum = np.bincount(rows, weights=lengths, minlength=ctx.n)
        lengths = lengths / row_sum[rows]

    def evaluate(x, t):
        return dissimilarity(x, t) - _contiguity_term(_share(x, t), rows, cols, lengths)

    return evaluate


@register("delta", "two_group", spatial=True, pysal="Delta", reference="Hoover (1941); Massey & Denton (1988)")
def delta(ctx):
    """DEL = ½ Σ |x_i/X − a_i/A|: the share of the group that would move to reach uniform density."""
    a = ctx.areas / ctx.areas.sum()

    def evaluate(x, t):
        with np.errstate(divide="ignore", invalid="ignore"):
            return 0.5 * np.abs(x / x.sum(axis=-1, keepdims=True) - a).sum(axis=-1)

    return evaluate


def _cumulative_gap(first, second):
    """Σ F1_{i−1} F2_i − Σ F1_i F2_{i−1} for cumulative proportions along the last axis."""
    return (first[..., :-1] * second[..., 1:]).sum(axis=-1) - (first[..., 1:] * second[..., :-1]).sum(axis=-1)


@register(
    "absolute_centralization",
    "two_group",
    spatial=True,
    pysal="AbsoluteCentralization",
    reference="Duncan, Cuzzort & Duncan (1961); Massey & Denton (1988)",
    centre="mean",
)
def absolute_centralization(ctx, centre="mean"):
    """ACE = Σ X_{i−1} A_i − Σ X_i A_{i−1}, areas sorted by distance to the centre (mean of centroids)."""
    order = np.argsort(ctx.centre_distance(centre), kind="stable")
    A = np.cumsum(ctx.areas[order]) / ctx.areas.sum()

    def evaluate(x, t):
        xs = x[..., order]
        with np.errstate(divide="ignore", invalid="ignore"):
            X = np.cumsum(xs, axis=-1) / xs.sum(axis=-1, keepdims=True)
        return _cumulative_gap(X, np.broadcast_to(A, X.shape))

    return evaluate


@register(
    "relative_centralization",
    "two_group",
    spatial=True,
    pysal="RelativeCentralization",
    reference="Duncan & Duncan (1955); Massey & Denton (1988)",
    centre="mean",
)
def relative_centralization(ctx, centre="mean"):
    """RCE = Σ X_{i−1} Y_i − Σ X_i Y_{i−1}: the group's closeness to the centre relative to the rest."""
    order = np.argsort(ctx.centre_distance(centre), kind="stable")

    def evaluate(x, t):
        xs, ys = x[..., order], (t - x)[..., order]
        with np.errstate(divide="ignore", invalid="ignore"):
            X = np.cumsum(xs, axis=-1) / xs.sum(axis=-1, keepdims=True)
            Y = np.cumsum(ys, axis=-1) / ys.sum(axis=-1, keepdims=True)
        return _cumulative_gap(X, Y)

    return evaluate


EQUAL_AREAS = (
    "undefined when every area has the same size (a grid or hexagon tiling): the group cannot live in "
    "smaller or larger areas than anyone else, and the formula is 0/0"
)


def _equal_areas(areas) -> bool:
    return bool(np.ptp(areas) <= 1e-9 * np.abs(areas).max()) if len(areas) else True


def _undefined(reason: str):
    """An evaluator that returns NaN, carrying the reason (compute_indices reports it)."""

    def nan(x, *rest):
        return np.full(np.shape(x)[:-1], np.nan)

    nan.undefined = reason
    return nan


def _concentration_bounds(t, area_sorted, X):
    """T1/T2 terms of Massey & Denton's concentration: the smallest (largest) areas that hold X people."""
    T = t.sum(axis=-1, keepdims=True)
    share = X[..., None] / T
    asc = np.cumsum(t, axis=-1) / T
    desc = np.cumsum(t[..., ::-1], axis=-1) / T
    n = t.shape[-1]
    n1 = np.argmax(asc >= share, axis=-1) + 1
    n2 = n - (np.argmax(desc >= share, axis=-1) + 1)
    idx = np.arange(n)
    first = idx < n1[..., None]
    last = idx >= n2[..., None]
    T1 = np.where(first, t, 0).sum(axis=-1)
    T2 = np.where(last, t, 0).sum(axis=-1)
    ta = t * area_sorted
    return np.where(first, ta, 0).sum(axis=-1), T1, np.where(last, ta, 0).sum(axis=-1), T2


@register(
    "absolute_concentration",
    "two_group",
    spatial=True,
    pysal="AbsoluteConcentration",
    reference="Massey & Denton (1988), 'The dimensions of residential segregation'",
)
def absolute_concentration(ctx):
    """ACO = 1 − (Σ x_i a_i / X − Σ_{i≤n1} t_i a_i / T1) / (Σ_{i≥n2} t_i a_i / T2 − Σ_{i≤n1} t_i a_i / T1), areas ascending."""
    order = np.argsort(ctx.areas, kind="stable")
    a = ctx.areas[order]

    def evaluate(x, t):
        xs, ts = x[..., order], t[..., order]
        X = xs.sum(axis=-1)
        s1, T1, s2, T2 = _concentration_bounds(ts, a, X)
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1 - ((xs * a).sum(axis=-1) / X - s1 / T1) / (s2 / T2 - s1 / T1)

    # Equal areas up to float noise would give noise / noise, not a number: say so instead.
    return _undefined(f"Absolute concentration is {EQUAL_AREAS}") if _equal_areas(a) else evaluate


@register(
    "relative_concentration",
    "two_group",
    spatial=True,
    pysal="RelativeConcentration",
    reference="Massey & Denton (1988)",
)
def relative_concentration(ctx):
    """RCO = ((Σ x_i a_i / X) / (Σ y_i a_i / Y) − 1) / ((Σ_{i≤n1} t_i a_i / T1) / (Σ_{i≥n2} t_i a_i / T2) − 1)."""
    order = np.argsort(ctx.areas, kind="stable")
    a = ctx.areas[order]

    def evaluate(x, t):
        xs, ts = x[..., order], t[..., order]
        ys = ts - xs
        X, Y = xs.sum(axis=-1), ys.sum(axis=-1)
        s1, T1, s2, T2 = _concentration_bounds(ts, a, X)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (((xs * a).sum(axis=-1) / X) / ((ys * a).sum(axis=-1) / Y) - 1) / ((s1 / T1) / (s2 / T2) - 1)

    return _undefined(f"Relative concentration is {EQUAL_AREAS}") if _equal_areas(a) else evaluate


def _quadratic(C, u, v=None):
    """Σ_ij u_i C_ij v_j for batched u, v of shape (..., n) with sparse C."""
    v = u if v is None else v
    flat_v = v.reshape(-1, v.shape[-1])
    Cv = (C @ flat_v.T).T.reshape(v.shape)
    return (u * Cv).sum(axis=-1)


@register(
    "spatial_proximity",
    "two_group",
    spatial=True,
    pysal="SpatialProximity",
    reference="White (1986); Massey & Denton (1988), published proximity exp(−d_km)",
)
def spatial_proximity(ctx):
    """SP = (X Pxx + Y Pyy) / (T Ptt), Pxx = Σ x_i x_j c_ij / X² (average proximity within the group)."""
    C = ctx.decay

    def evaluate(x, t):
        y = t - x
        X, Y, T = x.sum(axis=-1), y.sum(axis=-1), t.sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            Pxx, Pyy, Ptt = _quadratic(C, x) / X**2, _quadratic(C, y) / Y**2, _quadratic(C, t) / T**2
            return (X * Pxx + Y * Pyy) / (T * Ptt)

    return evaluate


@register(
    "relative_clustering",
    "two_group",
    spatial=True,
    pysal="RelativeClustering",
    reference="Massey & Denton (1988), published proximity exp(−d_km)",
)
def relative_clustering(ctx):
    """RCL = Pxx / Pyy − 1: how much closer group members live to each other than the rest do."""
    C = ctx.decay

    def evaluate(x, t):
        y = t - x
        with np.errstate(divide="ignore", invalid="ignore"):
            return (_quadratic(C, x) / x.sum(axis=-1) ** 2) / (_quadratic(C, y) / y.sum(axis=-1) ** 2) - 1

    return evaluate


def _decay_exposure(ctx, other):
    C = ctx.decay

    def evaluate(x, t):
        # K_ij = c_ij t_j / Σ_j c_ij t_j; index = Σ_i (x_i/X) Σ_j K_ij (v_j / t_j)
        v = x if other == "self" else t - x
        flat_t = t.reshape(-1, t.shape[-1])
        Ct = (C @ flat_t.T).T.reshape(t.shape)
        Cv = (C @ v.reshape(-1, v.shape[-1]).T).T.reshape(v.shape)  # Σ_j c_ij t_j (v_j/t_j) = Σ_j c_ij v_j
        with np.errstate(divide="ignore", invalid="ignore"):
            local = np.where(Ct > 0, Cv / np.where(Ct > 0, Ct, 1), 0.0)
            return (x / x.sum(axis=-1, keepdims=True) * local).sum(axis=-1)

    return evaluate


@register(
    "distance_decay_isolation",
    "two_group",
    spatial=True,
    pysal="DistanceDecayIsolation",
    reference="Morgan (1983), 'A distance-decay based interaction index'; Massey & Denton (1988)",
)
def distance_decay_isolation(ctx):
    """DPxx = Σ_i (x_i/X) Σ_j K_ij (x_j/t_j), K_ij = c_ij t_j / Σ_j c_ij t_j."""
    return _decay_exposure(ctx, "self")


@register(
    "distance_decay_exposure",
    "two_group",
    spatial=True,
    pysal="DistanceDecayInteraction",
    reference="Morgan (1983); Massey & Denton (1988)",
)
def distance_decay_exposure(ctx):
    """DPxy = Σ_i (x_i/X) Σ_j K_ij (y_j/t_j): exposure to the rest, weighted by distance decay."""
    return _decay_exposure(ctx, "other")


MULTISCALAR_PAIR_BUDGET = 30_000_000  # area pairs within the largest distance (~0.5 GB of sparse matrix)


def smoothed_counts(
    dataset, group: str | None = None, total: str | None = None, distances=(500, 1000, 2000, 4000)
) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """(group, total) counts per area summed over every area whose centroid lies within each distance.

    The "local environment" of Reardon et al. (2008), the area itself included; distance 0 is the
    areas as they are. Sparse (KD-tree pairs); unlike pysal's ``compute_multiscalar_profile`` the
    smoothed counts are not rounded.
    """
    import scipy.sparse as sp
    from scipy.spatial import cKDTree

    from ..errors import ValidationError, problem
    from .spatial_context import SpatialContext

    distances = sorted(float(d) for d in distances)
    if not distances or distances[0] <= 0:
        raise ValidationError(
            problem("bad_parameter", "distances must be positive numbers of metres, e.g. 500,1000,2000,4000")
        )
    x, t = dataset.counts(group or dataset.groups[0], total)
    xy = SpatialContext(dataset).centroids
    tree = cKDTree(xy)
    # Every pair within the largest distance is held at once: estimate them first (a sample of areas).
    sample = xy[np.random.default_rng(0).choice(len(xy), min(len(xy), 500), replace=False)]
    pairs = np.mean([len(i) for i in tree.query_ball_point(sample, distances[-1])]) * len(xy)
    if pairs > MULTISCALAR_PAIR_BUDGET:
        raise ValidationError(
            problem(
                "too_many_pairs",
                f"Smoothing over {distances[-1]:,.0f} m would pair up about {pairs:,.0f} "
                f"areas (limit {MULTISCALAR_PAIR_BUDGET:,}): ask for smaller distances",
            )
        )
    out = {0.0: (x, t)}
    for d in distances:
        B = tree.sparse_distance_matrix(tree, d, output_type="coo_matrix").tocsr()
        B = (B != 0).astype(float) + sp.eye(len(x))
        out[d] = (B @ x, B @ t)
    return out


def multiscalar_profile(
    dataset,
    index: str = "dissimilarity",
    group: str | None = None,
    total: str | None = None,
    distances=(500, 1000, 2000, 4000),
    smoothed: dict | None = None,
) -> dict[float, float]:
    """A two-group index recomputed on :func:`smoothed_counts` (pass ``smoothed`` to reuse them across indices)."""
    from . import get

    spec = get(index)
    if spec.kind != "two_group" or spec.spatial:
        from ..errors import ValidationError, problem

        raise ValidationError(
            problem("bad_parameter", f"The multiscalar profile needs an aspatial two-group index, not {index!r}")
        )
    evaluate = spec.evaluator()
    smoothed = smoothed if smoothed is not None else smoothed_counts(dataset, group, total, distances)
    return {d: float(evaluate(xs, ts)) for d, (xs, ts) in smoothed.items()}
