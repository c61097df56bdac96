"""Registry of city-wide segregation indices.

Every index is registered once with :func:`register` under its snake_case name.
The evaluation function is vectorised over a leading batch axis so that simulation
loops (see :mod:`spatial.indices.inference`) evaluate a whole block at once:

* ``two_group`` aspatial: ``f(x, t, **params)`` with ``x`` (group) and ``t`` (total) of
  shape ``(..., n)``, returning shape ``(...)``.
* ``multigroup`` aspatial: ``f(X, **params)`` with ``X`` of shape ``(..., n, k)``.
* spatial (``spatial=True``): ``f`` is a factory ``f(ctx, **params)`` called once per dataset
  (``ctx`` is a :class:`spatial.indices.spatial_context.SpatialContext` holding weights,
  distances, centroids) that returns an evaluator with the aspatial signature. Set-up is
  thus separate from evaluation: a permutation loop reuses what the factory built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["two_group", "multigroup"]


@dataclass(frozen=True)
class IndexSpec:
    name: str
    kind: Kind
    func: Callable
    spatial: bool = False
    defaults: dict = field(default_factory=dict)
    pysal: str | None = None  # name of the equivalent class in pysal `segregation`
    reference: str = ""

    def evaluator(self, ctx=None, **params) -> Callable:
        """The batched evaluation function, with set-up done once for spatial indices."""
        merged = {**self.defaults, **params}
        if self.spatial:
            return self.func(ctx, **merged)
        return lambda *arrays: self.func(*arrays, **merged)


INDICES: dict[str, IndexSpec] = {}


def register(
    name: str, kind: Kind, *, spatial: bool = False, pysal: str | None = None, reference: str = "", **defaults
):
    def deco(func):
        INDICES[name] = IndexSpec(name, kind, func, spatial, defaults, pysal, reference)
        return func

    return deco


def names(kind: Kind | None = None, spatial: bool | None = None) -> list[str]:
    _load_all()
    return [
        n for n, s in INDICES.items() if (kind is None or s.kind == kind) and (spatial is None or s.spatial == spatial)
    ]


def get(name: str) -> IndexSpec:
    _load_all()
    if name not in INDICES:
        from ..errors import ValidationError, problem

        raise ValidationError(problem("unknown_index", f"Unknown index {name!r}; choose from {sorted(INDICES)}"))
    return INDICES[name]


def _load_all() -> None:
    # The modules whose functions register themselves; imported on first use, as they import ``register`` from here.
    from . import aspatial, multigroup, spatial_indices  # noqa: F401
