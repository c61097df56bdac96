"""Two-group aspatial indices: a group ``x`` against the rest of its total ``t``.

All functions are batched: ``x`` and ``t`` have shape ``(..., n)`` and the result has shape
``(...)``, so a simulation block is evaluated in one call. Areas with ``t == 0`` contribute
nothing (their share is taken as 0, as in pysal ``segregation``). Formulas follow Massey &
Denton (1988), "The dimensions of residential segregation", Social Forces 67(2): 281–315.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from . import register


def _share(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t > 0, x / np.where(t > 0, t, 1), 0.0)


def _totals(x, t):
    X = x.sum(axis=-1)
    T = _row_sums(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        P = X / T
    return X, T, P


_ROW_SUMS: dict = {}  # id of a read-only row of totals -> (weak reference to it, its sum)
_ROW_LOCK = threading.Lock()


def _row_sums(t: np.ndarray) -> np.ndarray:
    """``t.sum(axis=-1)``. Simulated cities share one row of totals, broadcast (stride 0): summed once per block,
    and once per row if it is read-only and owns its data (the simulations' rows are; a million areas: 999 sums)."""
    if not (t.ndim == 2 and t.strides[0] == 0):
        return t.sum(axis=-1)
    row = t.base
    if not (isinstance(row, np.ndarray) and row.base is None and not row.flags.writeable and row.shape == t.shape[1:]):
        return np.broadcast_to(t[0].sum(), t.shape[:1])
    with _ROW_LOCK:  # simulations run on two threads
        ref, total = _ROW_SUMS.get(id(row), (None, None))
        if ref is None or ref() is not row:
            total = row.sum()
            if len(_ROW_SUMS) >= 8:
                _ROW_SUMS.pop(list(_ROW_SUMS)[0], None)  # a list: a dying row's callback may pop meanwhile
            key = id(row)  # dropped with the row: its id may be given to another array
            _ROW_SUMS[key] = (weakref.ref(row, lambda _: _ROW_SUMS.pop(key, None)), total)
    return np.broadcast_to(total, t.shape[:1])


def weighted_abs_pair_sum(p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``sum_i sum_j w_i w_j |p_i - p_j|`` over the last axis in O(n log n).

    After sorting by ``p``, each pair contributes ``w_i w_j (p_j - p_i)`` once, which is
    ``sum_j w_j (p_j W_<j - S_<j)`` with exclusive cumulative sums ``W`` of ``w`` and ``S`` of ``w p``.
    """
    order = np.argsort(p, axis=-1, kind="stable")
    ps = np.take_along_axis(p, order, axis=-1)
    ws = np.take_along_axis(w, order, axis=-1)
    w_before = np.cumsum(ws, axis=-1) - ws
    wp_before = np.cumsum(ws * ps, axis=-1) - ws * ps
    return 2.0 * (ws * (ps * w_before - wp_before)).sum(axis=-1)


@register("dissimilarity", "two_group", pysal="Dissim", reference="Duncan & Duncan (1955); Massey & Denton (1988)")
def dissimilarity(x, t):
    """D = ½ Σ |x_i/X − y_i/Y|, with y = t − x: the share of the group that would have to move to even out.

    Computed as Σ |x_i − P·t_i| / (2·X·(1 − P)), P = X/T (the same sum over a common denominator): one
    temporary and four passes over a block instead of six temporaries, which the 999 simulations of a
    million areas repeat (#20)."""
    X, T, P = _totals(x, t)
    dev = np.multiply(t, P[..., None], dtype=np.result_type(x, t, P))
    np.subtract(x, dev, out=dev)
    np.abs(dev, out=dev)
    with np.errstate(divide="ignore", invalid="ignore"):
        return dev.sum(axis=-1) / (2 * X * (1 - P))


@register("gini", "two_group", pysal="Gini", reference="Massey & Denton (1988)")
def gini(x, t):
    """G = Σ_i Σ_j t_i t_j |p_i − p_j| / (2 T² P (1 − P)), computed by sorting (no n×n matrix)."""
    _, T, P = _totals(x, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        return weighted_abs_pair_sum(_share(x, t), t) / (2.0 * T**2 * P * (1 - P))


def _binary_entropy(p):
    with np.errstate(divide="ignore", invalid="ignore"):
        e = -p * np.log(p) - (1 - p) * np.log(1 - p)
    return np.nan_to_num(e, nan=0.0)


@register("entropy", "two_group", pysal="Entropy", reference="Theil & Finizza (1971); Massey & Denton (1988)")
def entropy(x, t):
    """Theil's H = Σ t_i (E − E_i) / (E T), E the binary entropy of the city, E_i of area i."""
    _, T, P = _totals(x, t)
    E = _binary_entropy(P)
    Ei = _binary_entropy(_share(x, t))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (t * (E[..., None] - Ei)).sum(axis=-1) / (E * T)


@register("atkinson", "two_group", pysal="Atkinson", reference="Atkinson (1970); Massey & Denton (1988)", b=0.5)
def atkinson(x, t, b=0.5):
    """A = 1 − P/(1−P) · |Σ (1−p_i)^(1−b) p_i^b t_i / (P T)|^(1/(1−b)); b in (0, 1) weights under/over-representation."""
    b = float(b)
    if not 0.0 < b < 1.0:
        from ..errors import ValidationError, problem

        raise ValidationError(
            problem("bad_parameter", f"atkinson parameter b must be strictly between 0 and 1, got {b}")
        )
    _, T, P = _totals(x, t)
    p = _share(x, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = ((1 - p) ** (1 - b) * p**b * t).sum(axis=-1) / (P * T)
        return 1 - P / (1 - P) * np.abs(inner) ** (1 / (1 - b))


@register("isolation", "two_group", pysal="Isolation", reference="Lieberson (1981); Bell (1954)")
def isolation(x, t):
    """xPx = Σ (x_i/X)(x_i/t_i): the group share in the area of the average group member."""
    X, _, _ = _totals(x, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (x / X[..., None] * _share(x, t)).sum(axis=-1)


@register("exposure", "two_group", pysal="Interaction", reference="Lieberson (1981)")
def exposure(x, t):
    """xPy = Σ (x_i/X)(y_i/t_i): the share of the rest in the area of the average group member."""
    X, _, _ = _totals(x, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (x / X[..., None] * _share(t - x, t)).sum(axis=-1)


@register("correlation_ratio", "two_group", pysal="CorrelationR", reference="Bell (1954); White (1986)")
def correlation_ratio(x, t):
    """V (eta²) = (xPx − P) / (1 − P): isolation adjusted for the group's city-wide share."""
    _, _, P = _totals(x, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (isolation(x, t) - P) / (1 - P)
