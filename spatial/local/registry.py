"""Registry of local statistics: each is registered once with :func:`register` under its snake_case name.

A statistic is a function ``f(ctx) -> LocalResult`` of a :class:`spatial.local.prologue.LocalContext`. With
``neighbours=True`` the prologue has already built the weights among the populated areas, checked the variation
and chosen the permutations; with ``bivariate=True`` it has also read the ``other`` column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ValidationError, problem


@dataclass(frozen=True)
class LocalSpec:
    name: str
    func: Callable
    neighbours: bool = True  # compares each area with its neighbours (weights, islands, permutations)
    bivariate: bool = False  # needs a second column, ``other``
    reference: str = ""


REGISTRY: dict[str, LocalSpec] = {}
ALIASES: dict[str, str] = {}


def register(
    name: str, *, neighbours: bool = True, bivariate: bool = False, aliases: tuple[str, ...] = (), reference: str = ""
):
    def deco(func):
        REGISTRY[name] = LocalSpec(name, func, neighbours, bivariate, reference)
        ALIASES.update(dict.fromkeys(aliases, name))
        return func

    return deco


def get(name: str) -> LocalSpec:
    name = ALIASES.get(name, name)
    if name not in REGISTRY:
        raise ValidationError(
            problem("unknown_statistic", f"Unknown local statistic {name!r}; choose from {list(REGISTRY)}")
        )
    return REGISTRY[name]
