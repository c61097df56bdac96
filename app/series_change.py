"""Change between two dates of a series, over HTTP: thin calls into :mod:`spatial.change` on protected tables.

* decomposition of a change in M or H (Shapley, Elbers 2021) or D (spatial/attribute, Rey, Cortes & Knaap 2021);
* local change per area (share in percentage points with an FDR-controlled test, LQ) and LISA transitions;
* harmonisation of one date's counts onto another date's areas.

Decomposition and local change need the same areas at both dates: when the geography changed, the caller
harmonises first (``harmonize=area`` or ``population`` with ``weights``), or gets a 4xx saying so.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from spatial.dataset import ID
from spatial.errors import ValidationError, problem

from .series import Member, check_groups, pick


@dataclass
class ChangeQuery:
    start: str | None = None  # `from`
    end: str | None = None  # `to`
    groups: list[str] | None = None
    total: str | None = None
    harmonize: str = "none"  # none, area or population
    weights: str | None = None  # a dataset id of the series: the finer layer of the population method


@dataclass
class Pair:
    """Two dates' tables on the same areas (the first carried onto the second's when harmonised)."""

    start: Member
    end: Member
    frame1: gpd.GeoDataFrame
    frame2: gpd.GeoDataFrame
    groups: list[str]
    total: str
    harmonized: dict | None


def pair(members: list[Member], q: ChangeQuery, weights: Member | None = None) -> Pair:
    """The two dates asked for, checked, on common areas: 4xx when the areas differ and nothing harmonises them."""
    start = pick(members, q.start or members[0].date, "from")
    end = pick(members, q.end or members[-1].date, "to")
    if start is end:
        raise ValidationError(problem("bad_parameter", "`from` and `to` are the same date: choose two dates"))
    groups = list(dict.fromkeys(q.groups or [end.info["groups"][0]]))
    check_groups([start, end], groups, q.total)
    if q.total in groups:  # a group of itself has share 1 everywhere; its columns would collide below
        raise ValidationError(problem("bad_parameter", f"total {q.total!r} is also a group: choose another total"))
    total1, total2 = q.total or start.info["total"], q.total or end.info["total"]
    cols1, cols2 = [*groups, total1], [*groups, total2]
    a = start.source.dataset.areas[[ID, *cols1, "geometry"]].rename(columns={total1: "_total"})
    b = end.source.dataset.areas[[ID, *cols2, "geometry"]].rename(columns={total2: "_total"})
    same = set(start.source.data.ids) == set(end.source.data.ids)  # every area, withheld too: they are public
    info = None
    if not same or (q.harmonize != "none" and start.geography != end.geography):
        if q.harmonize == "none":
            raise _harmonise_first(start, end, a, b)
        a, info = _carry(a, b, [*groups, "_total"], q, weights)
    ids = sorted(set(a[ID]) & set(b[ID]))  # areas withheld at either date are left out of both
    a = a.set_index(ID).loc[ids]
    b = b.set_index(ID).loc[ids]
    return Pair(start, end, a, b, groups, q.total or end.info["total"], info)


def _harmonise_first(start: Member, end: Member, a, b) -> ValidationError:
    only1, only2 = len(set(a[ID]) - set(b[ID])), len(set(b[ID]) - set(a[ID]))
    return ValidationError(
        problem(
            "harmonise_first",
            f"{start.date} and {end.date} have different areas ({start.info['n_areas']} and {end.info['n_areas']}; "
            f"{only1} ids only at {start.date}, {only2} only at {end.date}): harmonise first. Add harmonize=area "
            f"(area-weighted) or harmonize=population&weights=DATASET (through a finer layer with counts, e.g. "
            f"{start.date}'s smaller areas) to carry {start.date}'s counts onto {end.date}'s areas",
        )
    )


def _carry(a, b, counts: list[str], q: ChangeQuery, weights: Member | None):
    from spatial.change import harmonize

    if q.harmonize not in ("area", "population"):
        raise ValidationError(problem("bad_parameter", "harmonize must be none, area or population"))
    fine = None
    if q.harmonize == "population":
        if weights is None:
            raise ValidationError(
                problem("missing_weights", "harmonize=population needs weights=DATASET: a finer layer with counts")
            )
        fine = weights.source.dataset.areas
    h = harmonize(
        a,
        b[[ID, "geometry"]],
        counts,
        method=q.harmonize,
        weights=fine,
        weight_column=weights.source.dataset.total if fine is not None else None,
        source_key=ID,
        target_key=ID,
        total="_total",
    )
    info = {
        "method": q.harmonize,
        "weights": weights.info["id"] if weights is not None else None,
        "city_estimated_share": float(h.city_estimated_share),
        "areas_carried_whole": int(len(h.matched)),
        "notes": [n.message for n in h.notes],
    }
    return h.frame[[ID, *counts, "estimated_share", "geometry"]], info


def decomposition(p: Pair, index: str, n_boot: int, seed: int) -> dict:
    """M or H: Shapley parts of the change (bootstrap intervals); D: spatial and attribute parts."""
    from spatial.change import decompose_dissimilarity, shapley_decomposition

    head = {"from": p.start.date, "to": p.end.date, "index": index, "groups": p.groups, "harmonized": p.harmonized}
    if index == "D":
        g = p.groups[0]
        out = decompose_dissimilarity(
            p.frame1[g].to_numpy(float),
            p.frame1["_total"].to_numpy(float),
            p.frame2[g].to_numpy(float),
            p.frame2["_total"].to_numpy(float),
        )
        return {**head, "groups": [g], **out}
    cols = [*p.groups, "_total"]
    res = shapley_decomposition(p.frame1[cols], p.frame2[cols], index, n_boot, total="_total", seed=seed)
    return {**head, "n_boot": n_boot, "seed": seed, **res.to_dict()}


def local(
    p: Pair, alpha: float, correction: str, permutations: int | None, seed: int, max_permutations: int
) -> tuple[gpd.GeoDataFrame, dict]:
    """Per area: change in share (pp) with its FDR-controlled test, LQ change, LISA labels at both dates."""
    from spatial.change import lisa_transitions, local_change
    from spatial.local import local_statistic

    g = p.groups[0]
    table = local_change(
        p.frame1[[g, "_total"]], p.frame2[[g, "_total"]], g, "_total", alpha=alpha, correction=correction
    )
    labels = []
    for frame, member in ((p.frame1, p.start), (p.frame2, p.end)):
        ds = member.source.dataset
        sub = ds.subset(np.isin(ds.ids, frame.index)) if p.harmonized is None else None
        if sub is None:  # carried counts: LISA on the target areas with the carried counts
            sub = _dataset_like(p.end.source.dataset, frame, g)
        res = local_statistic(
            sub,
            g,
            "lisa",
            total=None,
            permutations=permutations,
            seed=seed,
            alpha=alpha,
            max_permutations=max_permutations,
        )
        labels.append(pd.Series(res.labels, index=res.ids).loc[frame.index])
    trans = lisa_transitions(labels[0], labels[1])
    out = p.frame2[["geometry"]].join(table)
    out["lisa_from"], out["lisa_to"] = labels[0].to_numpy(), labels[1].to_numpy()
    out["transition"] = trans.per_area.to_numpy()
    names = p.end.source.dataset
    if names.name_col:
        out.insert(0, "name", names.areas.set_index(ID)[names.name_col].reindex(out.index).to_numpy())
    states = [str(s) for s in trans.counts.index]
    summary = {
        "from": p.start.date,
        "to": p.end.date,
        "group": g,
        "harmonized": p.harmonized,
        "alpha": alpha,
        "correction": correction,
        "significant": {k: int(v) for k, v in out["direction"].value_counts().items()},
        "transitions": {"states": states, "counts": trans.counts.to_numpy().astype(int).tolist()},
    }
    return gpd.GeoDataFrame(out.reset_index(names=ID), geometry="geometry", crs=p.frame2.crs), summary


def _dataset_like(template, frame: pd.DataFrame, group: str):
    """The carried counts as an AreaDataset on the target areas (for LISA at the harmonised date)."""
    import dataclasses

    areas = template.areas.set_index(ID).loc[frame.index, ["geometry"]].copy()
    areas[group] = frame[group].to_numpy(float)
    areas[template.total] = frame["_total"].to_numpy(float)
    areas = gpd.GeoDataFrame(areas.reset_index(names=ID), geometry="geometry", crs=template.areas.crs)
    return dataclasses.replace(template, areas=areas, groups=(group,), name_col=None, region_col=None)


def body(series_id: str, frame: gpd.GeoDataFrame, summary: dict, fmt: str) -> bytes:
    """Local change as JSON (summary + areas), GeoJSON (WGS 84, summary in ``segmap``) or CSV."""
    import json

    from spatial.export import csv_safe

    from .http import json_bytes

    if fmt == "csv":
        return csv_safe(pd.DataFrame(frame.drop(columns="geometry"))).to_csv(index=False).encode()
    if fmt == "geojson":
        doc = json.loads(frame.to_crs(4326).to_json(na="null", drop_id=True))
        doc["segmap"] = {"series": series_id, **summary}
        return json_bytes(doc)
    rows = json.loads(pd.DataFrame(frame.drop(columns="geometry")).to_json(orient="records"))
    return json_bytes({"series": series_id, **summary, "areas": rows})


def harmonized_body(series_id: str, p: Pair, fmt: str) -> bytes:
    import json

    from spatial.export import csv_safe

    from .http import json_bytes

    table = pd.DataFrame(p.frame1.drop(columns="geometry")).rename(columns={"_total": p.total})
    table.index.name = ID
    if fmt == "csv":
        return csv_safe(table.reset_index()).to_csv(index=False).encode()
    rows = json.loads(table.reset_index().to_json(orient="records"))
    head = {"series": series_id, "from": p.start.date, "to": p.end.date, "harmonized": p.harmonized}
    return json_bytes({**head, "areas": rows})
