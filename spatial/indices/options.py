"""What :func:`spatial.indices.compute.compute_indices` is asked for, checked once when it is made.

Like ``geopandas.options``, every field is validated where it is set, so the steps that read it
(evaluation, inference, comparison) trust it. Messages name the field, not a flag or a query parameter:
the command line and the HTTP layer say which of theirs it came from.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import ValidationError, problem

if TYPE_CHECKING:
    from ..dataset import AreaDataset

NULLS = ("random_allocation", "permutation")  # the null models of spatial.indices.inference
COMPARE_PERMUTATIONS = 999  # simulations of a comparison asked for without inference


def _bad(message: str, code: str = "bad_parameter") -> ValidationError:
    return ValidationError(problem(code, message))


def _names(values, what: str) -> tuple[str, ...]:
    if isinstance(values, str):
        values = (values,)
    out = tuple(dict.fromkeys(values or ()))  # a repeated name counts once, order kept
    if not all(isinstance(v, str) and v for v in out):
        raise _bad(f"{what} must be column or index names (non-empty text); got {list(out)!r}")
    return out


@dataclass(frozen=True)
class IndexOptions:
    """One request for city-wide indices.

    ``groups``: the group columns, the first being the focal one (two-group indices measure it against
    the rest of ``total``; multigroup indices use them all); empty means the dataset's groups.
    ``indices``: index names (empty: every aspatial one that fits the groups); ``params`` maps an index
    name to its parameters. ``permutations`` > 0 adds p-values and intervals against ``null`` (default:
    per index); ``compare`` (another dataset) or ``compare_group`` (another group here) adds a two-sample
    comparison; ``multiscalar`` (metres) adds each aspatial two-group index's multiscalar profile.
    """

    groups: tuple[str, ...] = ()
    total: str | None = None
    indices: tuple[str, ...] = ()
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    region: str | None = None
    permutations: int = 0
    seed: int | None = None
    null: str | None = None
    compare: AreaDataset | None = None
    compare_group: str | None = None
    ci_level: float = 0.95
    multiscalar: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        put = object.__setattr__  # frozen: normalise once, here
        put(self, "groups", _names(self.groups, "groups"))
        put(self, "indices", _names(self.indices, "indices"))
        put(self, "params", _params(self.params))
        put(self, "permutations", _count(self.permutations, "permutations"))
        put(self, "multiscalar", _distances(self.multiscalar))
        if self.seed is not None:
            put(self, "seed", _count(self.seed, "seed"))
        if self.null is not None and self.null not in NULLS:
            raise _bad(f"Unknown null model {self.null!r}; choose from {list(NULLS)}", "unknown_null")
        if not (isinstance(self.ci_level, numbers.Real) and 0 < self.ci_level < 1):
            raise _bad(f"ci_level must be between 0 and 1 (e.g. 0.95); got {self.ci_level!r}")
        for name in ("total", "region", "compare_group"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and value):
                raise _bad(f"{name} must be a column name; got {value!r}")

    @classmethod
    def of(cls, *, group: str | None = None, groups: Sequence[str] | None = None, **fields) -> IndexOptions:
        """Options from keyword arguments; ``group`` (the older form) is put first in ``groups``."""
        names = list(_names(groups, "groups"))
        if group is not None:
            names = [group, *(g for g in names if g != group)]
        return cls(groups=tuple(names), **fields)

    def resolved(self, dataset: AreaDataset) -> IndexOptions:
        """These options with the dataset's groups when none were named."""
        return self if self.groups else replace(self, groups=tuple(dataset.groups))

    @property
    def focal(self) -> str:
        return self.groups[0]

    @property
    def comparing(self) -> bool:
        return self.compare is not None or self.compare_group is not None

    @property
    def compare_permutations(self) -> int:
        return self.permutations or COMPARE_PERMUTATIONS


def _count(value, what: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value != int(value)
        or value < 0
    ):
        raise _bad(f"{what} must be a whole number, 0 or more; got {value!r}")
    return int(value)


def _params(value) -> dict:
    if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
        raise _bad("params maps an index name to its parameters, e.g. {'atkinson': {'b': 0.3}}")
    return {name: dict(p) for name, p in value.items()}


def _distances(values) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in (values or ()))
    except (TypeError, ValueError):
        raise _bad(f"multiscalar distances are metres, e.g. 500, 1000, 2000; got {values!r}") from None
    if not all(math.isfinite(d) and d > 0 for d in out):
        raise _bad(f"multiscalar distances must be finite positive metres; got {list(values)!r}")
    return out
