"""Multigroup aspatial indices over several group columns.

Batched: ``X`` has shape ``(..., n, k)`` (areas × groups); each area's population is the sum
of its row, so the groups must partition the population (the caller adds a remainder column
when a total is given). Formulas follow Reardon & Firebaugh (2002), "Measures of multigroup
segregation", Sociological Methodology 32: 33–67, as implemented by pysal ``segregation``.
"""

from __future__ import annotations

import numpy as np

from . import register
from .aspatial import weighted_abs_pair_sum


def _parts(X):
    ti = X.sum(axis=-1)  # (..., n)
    T = ti.sum(axis=-1)  # (...)
    with np.errstate(divide="ignore", invalid="ignore"):
        pik = np.where(ti[..., None] > 0, X / np.where(ti > 0, ti, 1)[..., None], 0.0)
        Pk = X.sum(axis=-2) / T[..., None]  # (..., k)
    return ti, T, pik, Pk


def _interaction(Pk):
    return (Pk * (1 - Pk)).sum(axis=-1)


@register(
    "multigroup_dissimilarity", "multigroup", pysal="MultiDissim", reference="Sakoda (1981); Reardon & Firebaugh (2002)"
)
def multigroup_dissimilarity(X):
    """D = Σ_k Σ_i t_i |π_ik − π_k| / (2 T I), I = Σ_k π_k (1 − π_k)."""
    ti, T, pik, Pk = _parts(X)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ti[..., None] * np.abs(pik - Pk[..., None, :])).sum(axis=(-2, -1)) / (2 * T * _interaction(Pk))


@register("multigroup_gini", "multigroup", pysal="MultiGini", reference="Reardon & Firebaugh (2002)")
def multigroup_gini(X):
    """G = Σ_k Σ_i Σ_j t_i t_j |π_ik − π_jk| / (2 T² I), by sorting each group's shares (no n×n matrix)."""
    ti, T, pik, Pk = _parts(X)
    p = np.moveaxis(pik, -1, -2)  # (..., k, n)
    w = np.broadcast_to(ti[..., None, :], p.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        return weighted_abs_pair_sum(p, w).sum(axis=-1) / (2 * T**2 * _interaction(Pk))


def _xlogx_ratio(pik, Pk):
    # π log(π / P), 0 where π = 0 (its limit)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = pik * np.log(pik / Pk)
    return np.where(pik > 0, v, 0.0)


def _entropy(Pk):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(Pk > 0, -Pk * np.log(Pk), 0.0).sum(axis=-1)


@register(
    "information_theory", "multigroup", pysal="MultiInfoTheory", reference="Theil (1972); Reardon & Firebaugh (2002)"
)
def information_theory(X):
    """Theil's H = Σ_i Σ_k t_i π_ik ln(π_ik / π_k) / (T E), E = Σ_k π_k ln(1/π_k)."""
    ti, T, pik, Pk = _parts(X)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ti[..., None] * _xlogx_ratio(pik, Pk[..., None, :])).sum(axis=(-2, -1)) / (T * _entropy(Pk))


@register(
    "normalized_exposure", "multigroup", pysal="MultiNormExposure", reference="James (1986); Reardon & Firebaugh (2002)"
)
def normalized_exposure(X):
    """P = Σ_k Σ_i t_i (π_ik − π_k)² / ((1 − π_k) T)."""
    ti, T, pik, Pk = _parts(X)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ti[..., None] * (pik - Pk[..., None, :]) ** 2 / (1 - Pk[..., None, :])).sum(axis=(-2, -1)) / T


@register(
    "relative_diversity",
    "multigroup",
    pysal="MultiRelativeDiversity",
    reference="Carlson (1992); Reardon & Firebaugh (2002)",
)
def relative_diversity(X):
    """R = Σ_k Σ_i t_i (π_ik − π_k)² / (T I)."""
    ti, T, pik, Pk = _parts(X)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ti[..., None] * (pik - Pk[..., None, :]) ** 2).sum(axis=(-2, -1)) / (T * _interaction(Pk))


@register(
    "simpsons_interaction",
    "multigroup",
    pysal="SimpsonsInteraction",
    reference="Simpson (1949); Reardon & Firebaugh (2002)",
)
def simpsons_interaction(X):
    """I = Σ_k π_k (1 − π_k): the chance two random residents of the city belong to different groups.

    A diversity measure of the city as a whole (it ignores how groups are spread), kept for parity
    with pysal; it is the normaliser of several unevenness indices above.
    """
    return _interaction(_parts(X)[3])


@register("simpsons_concentration", "multigroup", pysal="SimpsonsConcentration", reference="Simpson (1949)")
def simpsons_concentration(X):
    """λ = Σ_k π_k²: the chance two random residents belong to the same group (city-level diversity)."""
    Pk = _parts(X)[3]
    return (Pk * Pk).sum(axis=-1)


@register(
    "squared_coefficient_of_variation",
    "multigroup",
    pysal="MultiSquaredCoefVar",
    reference="Reardon & Firebaugh (2002)",
)
def squared_coefficient_of_variation(X):
    """C = Σ_k Σ_i t_i (π_ik − π_k)² / (T (K − 1) π_k)."""
    ti, T, pik, Pk = _parts(X)
    K = X.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ti[..., None] * (pik - Pk[..., None, :]) ** 2 / (T[..., None, None] * (K - 1) * Pk[..., None, :])).sum(
            axis=(-2, -1)
        )


@register(
    "mutual_information", "multigroup", reference="Theil & Finizza (1971); Mora & Ruiz-Castillo (2011); Elbers (2023)"
)
def mutual_information(X):
    """Mutual information index M = Σ_i Σ_k p_ik ln(p_ik / (p_i p_k)) with p = counts / T (nats).

    Unlike H it is not normalised by the city's entropy, which makes it decomposable:
    see :func:`mutual_information_decomposition`.
    """
    ti, T, pik, Pk = _parts(X)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ti[..., None] * _xlogx_ratio(pik, Pk[..., None, :])).sum(axis=(-2, -1)) / T


def mutual_information_decomposition(X: np.ndarray, region: np.ndarray) -> dict[str, float]:
    """Split M into a between-region and a within-region part: M = M_between + Σ_r w_r M_r.

    ``region`` labels each area (shape ``(n,)``); ``w_r`` is region r's population share.
    Follows the decomposition of the R package ``segregation`` (Elbers 2023, ``mutual_within``).
    """
    codes, inverse = np.unique(np.asarray(region), return_inverse=True)
    R = np.zeros((len(codes), X.shape[-1]))
    np.add.at(R, inverse, X)
    between = float(mutual_information(R))
    T = X.sum()
    within = 0.0
    parts = {}
    for r, code in enumerate(codes):
        Xr = X[inverse == r]
        Tr = Xr.sum()
        if Tr == 0:
            continue
        Mr = float(mutual_information(Xr))
        parts[str(code)] = {"m": Mr, "weight": float(Tr / T)}
        within += Tr / T * Mr
    return {"between": between, "within": float(within), "regions": parts}
