"""Errors raised by segmap's analysis library.

Every problem with user input is a :class:`ValidationError`: it carries a
machine-readable ``code``, a human ``message`` that says what to fix, and the
offending area ids (truncated for display). The HTTP layer maps it to a 4xx
problem response and the CLI prints it on stderr.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

_MAX_IDS_SHOWN = 10


def format_ids(ids: Iterable[object], limit: int = _MAX_IDS_SHOWN) -> str:
    ids = [str(i) for i in ids]
    shown = ", ".join(ids[:limit])
    return shown + (f" … and {len(ids) - limit} more" if len(ids) > limit else "")


@dataclass
class Problem:
    code: str
    message: str
    ids: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # structured details for clients (e.g. the overlapping pairs)

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "ids": self.ids[:100], "n_ids": len(self.ids), **self.extra}


class SegmapError(Exception):
    """Base class for all segmap errors."""


class ValidationError(SegmapError, ValueError):
    """Input that cannot be analysed as given. ``problems`` lists each issue found."""

    def __init__(self, problems: Problem | Sequence[Problem] | str, code: str = "invalid_input"):
        if isinstance(problems, str):
            problems = [Problem(code, problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        self.code = self.problems[0].code if self.problems else code
        super().__init__("; ".join(p.message for p in self.problems))

    def to_dict(self) -> dict:
        return {"code": self.code, "problems": [p.to_dict() for p in self.problems]}


def problem(code: str, message: str, ids: Iterable[object] = ()) -> Problem:
    ids = [str(i) for i in ids]
    if ids:
        message = f"{message} (ids: {format_ids(ids)})"
    return Problem(code, message, ids)
