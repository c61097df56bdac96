"""The two result shapes: one for every city-wide index, one for every local statistic."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import Problem


def _num(v):
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


@dataclass
class IndexResult:
    """A city-wide index value with optional inference.

    ``p_value`` is against the null model named in ``null``; ``expected`` is the mean under the null
    (segregation by chance alone). ``value`` is the observed index, which small areas bias towards
    segregation; ``value_bias_corrected`` removes that bias and ``ci_low``/``ci_high`` is the interval
    around it (:mod:`spatial.indices.inference`); ``within_noise`` says random allocation alone reaches the value.
    """

    name: str
    value: float
    groups: tuple[str, ...] = ()
    total: str | None = None
    p_value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    expected: float | None = None
    null: str | None = None
    permutations: int = 0
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[Problem] = field(default_factory=list)  # e.g. why the value is undefined
    value_bias_corrected: float | None = None
    within_noise: bool | None = None
    interval_method: str | None = None  # test_inversion, or basic_bootstrap where the index ignores segregation

    @property
    def statistic(self) -> float:  # esda/segregation-style alias
        return self.value

    def to_dict(self) -> dict[str, Any]:
        out = {"value": _num(self.value), "groups": list(self.groups), "total": self.total}
        if self.params:
            out["params"] = self.params
        if self.permutations:
            out.update(
                p_value=_num(self.p_value),
                ci_low=_num(self.ci_low),
                ci_high=_num(self.ci_high),
                expected=_num(self.expected),
                null=self.null,
                permutations=self.permutations,
                seed=self.seed,
                value_bias_corrected=_num(self.value_bias_corrected),
                within_noise=self.within_noise,
                interval_method=self.interval_method,
            )
        out.update(self.extra)
        if self.notes:
            out["notes"] = [n.to_dict() for n in self.notes]
        return out


NO_NEIGHBOURS = "no_neighbours"
NOT_SIGNIFICANT = "not_significant"


@dataclass
class LocalResult:
    """Per-area values of one local statistic, with significance and labels.

    Arrays are aligned with ``ids``. ``p_value`` is NaN where no test applies (islands).
    ``labels`` are already corrected for multiple testing with ``correction`` at ``alpha``.
    """

    statistic: str
    ids: np.ndarray
    values: np.ndarray
    labels: np.ndarray
    z: np.ndarray | None = None
    p_value: np.ndarray | None = None
    q_value: np.ndarray | None = None  # p-values adjusted for multiple testing
    alpha: float = 0.05
    correction: str = "fdr"
    permutations: int = 0
    seed: int | None = None
    group: str | None = None
    weights: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)  # e.g. global Moran's I, label counts
    columns: dict[str, np.ndarray] = field(default_factory=dict)  # extra per-area columns (share, lq …)
    notes: list[Problem] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        data = {"id": self.ids, "value": self.values}
        if self.z is not None:
            data["z"] = self.z
        if self.p_value is not None:
            data["p_value"] = self.p_value
        if self.q_value is not None:
            data["q_value"] = self.q_value
        data["label"] = self.labels
        data.update(self.columns)
        return pd.DataFrame(data)

    def meta_dict(self) -> dict[str, Any]:
        return {
            "statistic": self.statistic,
            "group": self.group,
            "alpha": self.alpha,
            "correction": self.correction,
            "permutations": self.permutations,
            "seed": self.seed,
            "weights": self.weights,
            "summary": self.summary,
            "notes": [n.to_dict() for n in self.notes],
        }
