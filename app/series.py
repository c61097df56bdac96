"""Series: the datasets of one place at several dates, their geographies, and the trend of every index.

Everything computed here runs on each dataset's protected table (``Source.dataset``), never on true counts.
The trend is one tidy table: a row per date, group and index (``kind`` = ``level``), and a row per date,
group and index for the change since the baseline date (``kind`` = ``change``, ``from`` = the baseline),
built on the two-sample comparison of :func:`spatial.indices.compute.compute_indices` (``compare=``).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

from fastapi import Depends, Request

from spatial.errors import ValidationError, problem
from spatial.export import csv_cell
from spatial.trend import Dated, split_indices, trend

from .deps import Source, get_registry, get_settings, is_owner, load_source
from .http import etag_for, json_bytes
from .problems import not_found
from .registry import Registry
from .series_fields import geography_fingerprint
from .settings import Settings

COLUMNS = (
    "date",
    "group",
    "index",
    "value",
    "ci_low",
    "ci_high",
    "p_value",
    "kind",
    "from",
    "value_bias_corrected",
    "dataset",
    "geography",
)
SERIES_HINT = "List the series with GET /v1/series (`segmap series`); a dataset joins one with the upload fields "
SERIES_HINT += "`series` and `date`."


@dataclass
class Member:
    """One date of a series, as this caller may see it."""

    date: str
    info: dict
    source: Source

    @property
    def geography(self) -> str:
        return self.info["geography"]


def _num(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) or math.isinf(v) else v


def series_rows(registry: Registry, series_id: str) -> list[dict]:
    """The catalogue rows of a series in time order (404 when there is none), each with its geography."""
    rows = registry.series(series_id)
    if not rows:
        raise not_found("series", series_id, SERIES_HINT)
    for r in rows:
        if not r.get("geography"):  # a row stored before geographies were recorded
            ds = registry.load(r["id"])
            r["geography"] = geography_fingerprint(ds) if ds is not None else None
    return rows


def list_series(registry: Registry, base_url: str) -> dict:
    by_id: dict[str, list[dict]] = {}
    for r in registry.series():
        by_id.setdefault(r["series"], []).append(r)
    out = []
    for sid, rows in by_id.items():
        out.append(
            {
                "id": sid,
                "n_datasets": len(rows),
                "first": rows[0]["date"],
                "last": rows[-1]["date"],
                "dates": [r["date"] for r in rows],
                "links": {"self": f"{base_url}/v1/series/{sid}", "map": f"{base_url}/maps/series/{sid}"},
            }
        )
    return {"series": out}


def describe_series(registry: Registry, series_id: str, base_url: str) -> dict:
    """A series' datasets in time order with their geographies, and where the geography changes."""
    rows = series_rows(registry, series_id)
    datasets, geographies, changes = [], {}, []
    for i, r in enumerate(rows):
        datasets.append(
            {
                "id": r["id"],
                "date": r["date"],
                "year": r["year"],
                "title": r["title"],
                "n_areas": r["n_areas"],
                "geography": r["geography"],
                "crs": r["crs"],
                "total": r["total"],
                "groups": r["groups"],
                "links": {"self": f"{base_url}/v1/datasets/{r['id']}", "map": f"{base_url}/maps/{r['id']}"},
            }
        )
        g = geographies.setdefault(r["geography"], {"geography": r["geography"], "n_areas": r["n_areas"], "dates": []})
        g["dates"].append(r["date"])
        if i and r["geography"] != rows[i - 1]["geography"]:
            prev = rows[i - 1]
            changes.append(
                {"from": prev["date"], "to": r["date"], "n_areas_from": prev["n_areas"], "n_areas_to": r["n_areas"]}
            )
    here = f"{base_url}/v1/series/{series_id}"
    return {
        "id": series_id,
        "n_datasets": len(rows),
        "datasets": datasets,
        "geographies": list(geographies.values()),
        "geography_changes": changes,
        "links": {
            "self": here,
            "indices": f"{here}/indices",
            "decomposition": f"{here}/decomposition",
            "change": f"{here}/change",
            "map": f"{base_url}/maps/series/{series_id}",
        },
    }


def load_members(registry: Registry, settings: Settings, series_id: str, owner: bool) -> list[Member]:
    """Every date of a series with its protected table (what a caller without the key may see)."""
    members = []
    for r in series_rows(registry, series_id):
        src = load_source(registry, settings, r["id"], owner, r)
        if src is not None:  # deleted meanwhile: the series goes on without it
            members.append(Member(r["date"], r, src))
    if not members:
        raise not_found("series", series_id, SERIES_HINT)
    return members


def pick(members: list[Member], date: str, role: str) -> Member:
    for m in members:
        if date in (m.date, m.date[:4], m.info["id"]):
            return m
    dates = ", ".join(m.date for m in members)
    raise ValidationError(
        problem("unknown_date", f"`{role}` {date!r} is not a date of this series; its dates: {dates}")
    )


def check_groups(members: list[Member], groups: list[str], total: str | None) -> None:
    """Every date must carry every group (and the total) under the same name: name the dates that do not."""
    problems = []
    for g in groups:
        lacking = [m for m in members if g not in m.info["groups"]]
        if len(lacking) == len(members):
            problems.append(
                problem(
                    "unknown_column", f"No date of the series has a group {g!r}; its groups are {_declared(members)}"
                )
            )
        elif lacking:
            where = "; ".join(f"{m.date} (dataset {m.info['id']!r}, groups {m.info['groups']})" for m in lacking)
            problems.append(
                problem(
                    "missing_group",
                    f"Group {g!r} is missing at {where}. A group renamed between dates must carry one name across "
                    "the series: upload that date again with the same column name",
                )
            )
    if total is not None:
        lacking = [m for m in members if total != m.info["total"] and total not in m.info["groups"]]
        if lacking:
            where = ", ".join(f"{m.date} ({m.info['id']!r}, total {m.info['total']!r})" for m in lacking)
            problems.append(problem("missing_total", f"Total {total!r} is missing at {where}"))
    if problems:
        raise ValidationError(problems)


def _declared(members: list[Member]) -> list[str]:
    return list(dict.fromkeys(g for m in members for g in m.info["groups"]))


def to_csv(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow(["" if r.get(c) is None else csv_cell(r[c]) for c in COLUMNS])
    return buf.getvalue().encode()


@dataclass
class TrendQuery:
    """What GET /v1/series/{id}/indices and `segmap trend` ask for (checked by :func:`trend_body`)."""

    groups: list[str] | None = None
    total: str | None = None
    indices: list[str] | None = None
    permutations: int = 0
    seed: int = 0
    baseline: str | None = None  # a date, or "none"; default: the first date
    null: str | None = None
    format: str = "json"


def trend_table_checks(members: list[Member], q: TrendQuery) -> tuple[list[str], str | None]:
    """The groups and the baseline date of a trend, or a 4xx naming what to fix (before anything is computed)."""
    groups = list(dict.fromkeys(q.groups or [members[0].info["groups"][0]]))
    check_groups(members, groups, q.total)
    split_indices(q.indices, len(groups))  # unknown index names
    baseline = None if q.baseline == "none" else pick(members, q.baseline or members[0].date, "baseline").date
    return groups, baseline


def trend_table(members: list[Member], q: TrendQuery) -> dict:
    """The tidy trend table of a series on its protected tables (groups and dates checked first)."""
    groups, baseline = trend_table_checks(members, q)
    dated = [Dated(m.date, m.source.dataset, m.info["id"], m.geography) for m in members]
    out = trend(
        dated,
        groups,
        indices=q.indices,
        total=q.total,
        permutations=q.permutations,
        seed=q.seed,
        baseline=baseline,
        null=q.null,
    )
    disclosure = {m.info["id"]: m.source.data.report for m in members if m.source.data.report}
    return {
        "columns": list(COLUMNS),
        "rows": out["rows"],
        "notes": out["notes"],
        "baseline": baseline,
        "permutations": q.permutations,
        "seed": q.seed,
        **({"disclosure": disclosure} if disclosure else {}),
    }


def trend_body(series_id: str, members: list[Member], q: TrendQuery) -> bytes:
    table = trend_table(members, q)
    if q.format == "csv":
        return to_csv(table["rows"])
    return json_bytes({"series": series_id, **table})


def members(
    series_id: str,
    registry: Registry = Depends(get_registry),
    settings: Settings = Depends(get_settings),
    owner: bool = Depends(is_owner),
) -> list[Member]:
    """Every date of the series in the path, each as this caller may see it (a request dependency)."""
    return load_members(registry, settings, series_id, owner)


def request_etag(what: str, request: Request, found: list[Member], extra: list | None = None) -> str:
    """The ETag of a series output: every date's version and protection, and the query."""
    keys = [m.source.key() for m in found] + (extra or [])
    return etag_for(what, keys, sorted(request.query_params.multi_items()))
