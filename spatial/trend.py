"""The trend of city-wide indices across the dates of a series, as one tidy table.

A ``level`` row per date, group and index (value, bias-corrected interval, p-value against the null), and a
``change`` row per later date, group and index: the difference from the baseline date with its interval and the
p-value of no change, from the two-sample comparison of :func:`spatial.indices.compute.compute_indices`
(``compare=``), which calibrates each date for its own small-area bias. Two-group indices are computed for each
group against the rest of its total; multigroup indices once over all the groups (group ``a+b+…``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .dataset import AreaDataset
from .errors import ValidationError, problem
from .indices import get, names


@dataclass
class Dated:
    """One date of a series: its dataset (already protected where it must be) and its geography's fingerprint."""

    date: str
    dataset: AreaDataset
    ident: str = ""
    geography: str | None = None


def _num(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) or math.isinf(v) else v


def split_indices(indices: Sequence[str] | None, n_groups: int) -> tuple[list[str], list[str]]:
    """Two-group and multigroup index names (default: every aspatial one; multigroup with two groups or more)."""
    wanted = list(dict.fromkeys(indices)) if indices else names(kind="two_group", spatial=False)
    if not indices and n_groups >= 2:
        wanted += names(kind="multigroup", spatial=False)
    specs = [get(n) for n in wanted]  # an unknown name is refused here, naming the known ones
    return [s.name for s in specs if s.kind == "two_group"], [s.name for s in specs if s.kind == "multigroup"]


def trend(
    series: Sequence[Dated],
    groups: Sequence[str],
    *,
    indices: Sequence[str] | None = None,
    total: str | None = None,
    permutations: int = 0,
    seed: int | None = 0,
    baseline: str | None = None,
    null: str | None = None,
) -> dict:
    """Every index at every date, and its change since ``baseline`` (a date; None: no change rows).

    Returns ``{"rows": [...], "notes": [...]}``; each row has date, group, index, value, ci_low, ci_high,
    p_value, kind, from, value_bias_corrected, dataset, geography. Without permutations the intervals and
    p-values are None and a change is the plain difference of the two values."""
    if not series:
        raise ValidationError(problem("empty_series", "The series has no datasets"))
    groups = list(dict.fromkeys(groups))
    two, multi = split_indices(indices, len(groups))
    if multi and len(groups) < 2 and total is None:
        multi = []  # one group and no total: nothing for a multigroup index to compare it with
    base = next((d for d in series if d.date == baseline), None)
    if baseline is not None and base is None:
        raise ValidationError(problem("unknown_date", f"Baseline {baseline!r} is not a date of the series"))
    rows, notes = [], []
    common = {"total": total, "permutations": permutations, "seed": seed, "null": null}
    # The baseline first: its level rows are what a plain (unsimulated) change is measured from.
    for d in ([base] if base is not None else []) + [d for d in series if d is not base]:
        against = base if base is not None and d is not base else None
        compare = against.dataset if against is not None and permutations else None
        jobs = [([g], two, g) for g in groups if two] + ([(groups, multi, "+".join(groups))] if multi else [])
        for job_groups, job_indices, label in jobs:
            from .indices.compute import compute_indices

            res = compute_indices(d.dataset, groups=job_groups, indices=job_indices, compare=compare, **common)
            for name, r in res.items():
                rows.append(_level(d, label, name, r))
                notes += [f"{d.date} {label} {name}: {n.message}" for n in r.notes]
                if against is not None:
                    rows.append(_change(d, against, label, name, r, rows))
        if against is not None and against.geography != d.geography:
            notes.append(
                f"The geography changed between {against.date} and {d.date} ({against.dataset.n} and "
                f"{d.dataset.n} areas): the change compares two different partitions of the city; harmonise "
                "first to separate the boundary change from the change in where people live"
            )
    order = {d.date: i for i, d in enumerate(series)}
    rows.sort(key=lambda r: (order[r["date"]], r["kind"] != "level"))
    return {"rows": rows, "notes": list(dict.fromkeys(notes))}


def _level(d: Dated, label: str, name: str, r) -> dict:
    return {
        "date": d.date,
        "group": label,
        "index": name,
        "value": _num(r.value),
        "ci_low": _num(r.ci_low),
        "ci_high": _num(r.ci_high),
        "p_value": _num(r.p_value),
        "kind": "level",
        "from": None,
        "value_bias_corrected": _num(r.value_bias_corrected),
        "dataset": d.ident,
        "geography": d.geography,
    }


def _change(d: Dated, against: Dated, label: str, name: str, r, rows: list[dict]) -> dict:
    c = r.extra.get("comparison")
    if c is None:  # no simulations: the plain difference from the baseline's level row
        before = next(x for x in rows if x["date"] == against.date and x["group"] == label and x["index"] == name)
        diff = None if before["value"] is None or _num(r.value) is None else _num(r.value) - before["value"]
        c = {"difference": diff}
    return {
        "date": d.date,
        "group": label,
        "index": name,
        "value": _num(c.get("difference")),
        "ci_low": _num(c.get("ci_low")),
        "ci_high": _num(c.get("ci_high")),
        "p_value": _num(c.get("p_value")),
        "kind": "change",
        "from": against.date,
        "value_bias_corrected": _num(c.get("difference_bias_corrected")),
        "dataset": d.ident,
        "geography": d.geography,
    }
