"""The numbers behind a map view: one row per area with its value, class, colour and label.

One frame feeds every output (Folium page, side panel, data download, PNG/SVG), so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from maps.classify import mapclassify
from spatial.dataset import ID, AreaDataset
from spatial.disclosure import WITHHELD, PublicData, protect
from spatial.errors import ValidationError, problem

VIEWS = ("share", "lq", "lisa", "hotspots", "informal")
VIEW_STATISTIC = {"lq": "lq", "lisa": "lisa", "hotspots": "gi_star"}  # the local statistic a view draws
SHARE_VIEWS = ("share", "informal")  # views whose value is the share itself
CLUSTER_VIEWS = ("lisa", "hotspots")  # views of significance classes
VIEW_TITLES = {
    "share": "Share of group",
    "lq": "Location quotient",
    "lisa": "LISA clusters",
    "hotspots": "Gi* hot and cold spots",
    "informal": "Share in informal settlements",
}
SCHEMES = {
    "quantiles": mapclassify.Quantiles,
    "natural_breaks": mapclassify.NaturalBreaks,
    "equal_interval": mapclassify.EqualInterval,
}
# Colour-blind-safe sequential palettes (ColorBrewer YlGnBu; PuOr diverging for LQ around 1).
SEQUENTIAL = {
    3: ["#edf8b1", "#7fcdbb", "#2c7fb8"],
    4: ["#ffffcc", "#a1dab4", "#41b6c4", "#225ea8"],
    5: ["#ffffcc", "#a1dab4", "#41b6c4", "#2c7fb8", "#253494"],
    6: ["#ffffcc", "#c7e9b4", "#7fcdbb", "#41b6c4", "#2c7fb8", "#253494"],
    7: ["#ffffcc", "#c7e9b4", "#7fcdbb", "#41b6c4", "#1d91c0", "#225ea8", "#0c2c84"],
}
LQ_BREAKS = [0.5, 0.8, 1.25, 2.0]
LQ_COLOURS = ["#5e3c99", "#b2abd2", "#f7f7f7", "#fdb863", "#e66101"]
LQ_LABELS = [
    "under 0.5 (far below city)",
    "0.5 – 0.8",
    "0.8 – 1.25 (near city share)",
    "1.25 – 2",
    "2 and over (far above city)",
]
# GeoDa's LISA cluster colours.
LISA = {
    "high_high": ("High-High", "#ff0000"),
    "low_low": ("Low-Low", "#0000ff"),
    "high_low": ("High-Low", "#f4ada8"),
    "low_high": ("Low-High", "#a7adf9"),
    "not_significant": ("Not significant", "#eeeeee"),
    "no_neighbours": ("No neighbours", "#ffffff"),
    "no_population": ("No population", "#ffffff"),
}
HOTSPOTS = {
    "hot_spot": ("Hot spot", "#d7191c"),
    "cold_spot": ("Cold spot", "#2c7bb6"),
    "not_significant": ("Not significant", "#eeeeee"),
    "no_neighbours": ("No neighbours", "#ffffff"),
    "no_population": ("No population", "#ffffff"),
}
# Legend rows that are no finding.
UNTESTED = ("Not significant", "No neighbours", "No population", "Hidden (small counts)")
SUPPRESSED = ("Hidden (small counts)", "#6b6b6b")  # apart from every class, also in simulated CVD
FIRST_COLUMNS = (ID, "name", "total", "count", "share", "value", "p_value", "label", "significance", "class", "colour")


@dataclass
class ViewData:
    """Per-area rows (``frame``), the legend (label, colour, count) in class order, and notes."""

    view: str
    group: str
    frame: pd.DataFrame
    legend: list[tuple[str, str, int]]
    scheme: str | None = None
    k: int | None = None
    meta: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{VIEW_TITLES[self.view]}: {self.group}"


def check(dataset: AreaDataset, group: str | None, view: str, scheme: str, k: int) -> str:
    group = group or dataset.groups[0]
    if group not in dataset.groups:
        raise ValidationError(problem("unknown_column", f"No group {group!r}; groups are {list(dataset.groups)}"))
    if view not in VIEWS:
        raise ValidationError(problem("bad_parameter", f"Unknown view {view!r}; choose from {list(VIEWS)}"))
    if scheme not in SCHEMES:
        raise ValidationError(
            problem("bad_parameter", f"Unknown classification {scheme!r}; choose from {list(SCHEMES)}")
        )
    if k not in SEQUENTIAL:
        raise ValidationError(problem("bad_parameter", f"classes must be between 3 and 7, got {k}"))
    return group


@dataclass
class _Options:
    scheme: str
    k: int
    permutations: int | None
    seed: int
    alpha: float
    correction: str
    max_permutations: int


@dataclass
class _Start:
    """What every view starts from: the protected table, the per-area frame, meta and notes."""

    data: PublicData
    group: str
    view: str
    base: pd.DataFrame
    meta: dict
    notes: list[str]


def view_data(
    dataset: AreaDataset | PublicData,
    group: str | None = None,
    view: str = "share",
    *,
    scheme: str = "quantiles",
    k: int = 5,
    permutations: int | None = None,
    seed: int = 0,
    alpha: float = 0.05,
    correction: str = "fdr",
    disclosure_threshold: int = 0,
    max_permutations: int = 9999,
) -> ViewData:
    """Compute and classify one view, one row per area, from the protected table (``dataset`` already
    protected, or protected here at ``disclosure_threshold``): withheld areas are shown as hidden."""
    data = dataset if isinstance(dataset, PublicData) else protect(dataset, disclosure_threshold)
    group = check(data.dataset, group, view, scheme, k)  # every statistic of the view uses the published areas
    options = _Options(scheme, k, permutations, seed, alpha, correction, max_permutations)
    vd = _CLASSIFY[view](_start(data, group, view), options)
    first = [c for c in FIRST_COLUMNS if c in vd.frame]  # the download's columns keep their order; new ones go last
    vd.frame = vd.frame[first + [c for c in vd.frame if c not in first]]
    return vd


def _start(data: PublicData, group: str, view: str) -> _Start:
    ds = data.dataset
    base = pd.DataFrame({ID: data.ids})
    base["name"] = data.areas[ds.name_col].astype(str).to_numpy() if ds.name_col else data.ids
    base["total"] = data.column(ds.total)
    base["count"] = data.column(group)
    base["share"] = data.share(group)
    meta: dict = {}
    notes: list[str] = []
    if data.report:
        meta["disclosure"] = data.report
        if data.report["withheld_areas"]:
            notes.append(
                f"{data.report['withheld_areas']} areas with counts from 1 to {data.threshold - 1} are "
                "hidden and left out of every statistic on this map."
            )
    return _Start(data, group, view, base, meta, notes)


def _shares(s: _Start, o: _Options) -> ViewData:
    """Share of the group (or of people in informal settlements), in ``o.k`` classes of ``o.scheme``."""
    ds, base, group = s.data.dataset, s.base, s.group
    if s.view == "informal":
        if "informal" not in ds.groups:
            raise ValidationError(
                problem(
                    "no_informal",
                    "This dataset has no 'informal' group; add informal "
                    "settlements (POST /v1/datasets/{id}/informal) to map them",
                )
            )
        group = "informal"
        base["count"] = s.data.column(group)
        base["share"] = s.data.share(group)
    values = base["share"].to_numpy(dtype=float)
    ok = np.isfinite(values)
    classifier = SCHEMES[o.scheme](values[ok], k=o.k)
    bins = np.asarray(classifier.bins, dtype=float)
    k = len(bins)
    colours = SEQUENTIAL.get(k) or SEQUENTIAL[5]
    cls = np.full(len(values), -1)
    cls[ok] = classifier.yb
    lows = np.concatenate([[values[ok].min()], bins[:-1]])
    labels = [f"{lo:.1%} – {hi:.1%}" for lo, hi in zip(lows, bins)]
    base["value"] = values
    base["p_value"] = np.nan
    base["label"] = _pick(labels, SUPPRESSED[0], cls)
    base["class"] = cls
    base["colour"] = _pick(colours, SUPPRESSED[1], cls)
    legend = [(lab, colours[i], int((cls == i).sum())) for i, lab in enumerate(labels)]
    if (~ok).any():
        legend.append((SUPPRESSED[0], SUPPRESSED[1], int((~ok).sum())))
    city_share = float(ds.column(group).sum() / ds.column(ds.total).sum())
    s.meta.update(scheme=o.scheme, k=k, bins=[float(b) for b in bins], city_share=city_share)
    return ViewData(s.view, group, base, legend, o.scheme, k, s.meta, s.notes)


def _pick(names, hidden: str, cls: np.ndarray) -> np.ndarray:
    """``names[c]`` for each class ``c``, ``hidden`` for class -1: one array lookup, not a Python loop per area."""
    return np.array([*names, hidden], dtype=object)[np.where(np.asarray(cls) >= 0, cls, len(names))]


def _local(s: _Start, o: _Options, permutations: int | None):
    """The view's local statistic on the published areas, into ``value``/``p_value``; returns (result, labels),
    labels per area with withheld areas as ``WITHHELD``."""
    from spatial.local import local_statistic

    data, statistic = s.data, VIEW_STATISTIC[s.view]
    res = local_statistic(
        data.dataset,
        s.group,
        statistic,
        permutations=permutations,
        seed=o.seed,
        alpha=o.alpha,
        correction=o.correction,
        max_permutations=o.max_permutations,
    )
    summary = {key: v for key, v in res.summary.items() if not isinstance(v, np.ndarray)}
    s.meta.update(
        statistic=statistic, alpha=o.alpha, correction=o.correction, permutations=res.permutations, summary=summary
    )
    s.notes += [n.message for n in res.notes]
    s.base["value"] = data.expand(np.asarray(res.values, dtype=float))
    s.base["p_value"] = data.expand(np.asarray(res.p_value, dtype=float)) if res.p_value is not None else np.nan
    # p after the correction, and what the Moran scatter plot and the area panel show (all from the public table)
    s.base["q_value"] = data.expand(np.asarray(res.q_value, dtype=float)) if res.q_value is not None else np.nan
    if res.z is not None:
        s.base["z"] = data.expand(np.asarray(res.z, dtype=float))
    if "lag" in res.columns:
        s.base["lag"] = data.expand(np.asarray(res.columns["lag"], dtype=float))
    labels = data.labels(res.labels).astype(str)
    s.base["label_key"] = labels
    return res, labels


def _lq(s: _Start, o: _Options) -> ViewData:
    """Location quotient in fixed classes around 1 (no permutations: the classes are not tests)."""
    hidden = s.base["share"].isna()
    _, labels = _local(s, o, permutations=0)
    base = s.base
    cls = np.digitize(base["value"].to_numpy(), LQ_BREAKS)
    cls = np.where(hidden | (labels == "no_population"), -1, cls)
    base.loc[hidden, "value"] = np.nan
    base["label"] = _pick(LQ_LABELS, SUPPRESSED[0], cls)
    base["significance"] = labels
    base["class"] = cls
    base["colour"] = _pick(LQ_COLOURS, SUPPRESSED[1], cls)
    legend = [(lab, LQ_COLOURS[i], int((cls == i).sum())) for i, lab in enumerate(LQ_LABELS)]
    if (cls < 0).any():
        legend.append((SUPPRESSED[0], SUPPRESSED[1], int((cls < 0).sum())))
    return ViewData(s.view, s.group, base, legend, meta=s.meta, notes=s.notes)


def _clusters(s: _Start, o: _Options) -> ViewData:
    """LISA clusters or Gi* hot and cold spots: the significance classes after the multiple-testing correction."""
    res, labels = _local(s, o, o.permutations)
    if "significance" in res.summary:  # corrected clusters vs p ≤ alpha before correction
        s.notes.append(res.summary["significance"]["explanation"])
    table = LISA if s.view == "lisa" else HOTSPOTS
    keys = list(table)
    table = {**table, WITHHELD: SUPPRESSED}  # withheld areas: class -1, like hidden shares in the other views
    base = s.base
    # One lookup per distinct label, not per area (a Python loop over 1,000,000 areas took seconds).
    inv, uniq = pd.factorize(labels)
    uniq = [str(lab) for lab in uniq]
    base["label"] = np.array([table.get(lab, (lab, "#eeeeee"))[0] for lab in uniq], dtype=object)[inv]
    base["class"] = np.array([keys.index(lab) if lab in keys else -1 for lab in uniq], dtype=np.int64)[inv]
    base["colour"] = np.array([table.get(lab, (lab, "#eeeeee"))[1] for lab in uniq], dtype=object)[inv]
    legend = [(name, colour, int((labels == key).sum())) for key, (name, colour) in table.items()]
    legend = [row for row in legend if row[2] or row[0] not in ("No neighbours", "No population", SUPPRESSED[0])]
    _uncorrected(s, base, labels, table)
    return ViewData(s.view, s.group, base, legend, meta=s.meta, notes=s.notes)


def _quadrants(view: str, frame: pd.DataFrame) -> np.ndarray:
    """The class each tested area would have if it were significant: LISA quadrant or Gi* sign."""
    z = frame["z"].to_numpy(dtype=float)
    if view == "hotspots":
        return np.where(z > 0, "hot_spot", "cold_spot")
    lag = frame["lag"].to_numpy(dtype=float)
    return np.select(
        [(z > 0) & (lag > 0), (z <= 0) & (lag > 0), (z <= 0) & (lag <= 0)],
        ["high_high", "low_high", "low_low"],
        "high_low",
    )


def _uncorrected(s: _Start, base: pd.DataFrame, labels: np.ndarray, table: dict) -> None:
    """Areas with p < alpha before the correction that do not pass it: their would-be class (``uncorrected``,
    empty for the others) and one hatched legend row per class in ``meta["uncorrected"]``."""
    p = base["p_value"].to_numpy(dtype=float)
    raw = np.isfinite(p) & (p <= s.meta["alpha"]) & (labels == "not_significant")
    would = _quadrants(s.view, base) if "z" in base else np.full(len(base), "")
    base["uncorrected"] = np.where(raw, would, "")
    s.meta["uncorrected"] = [
        {"key": key, "label": name, "colour": colour, "count": int((base["uncorrected"] == key).sum())}
        for key, (name, colour) in table.items()
        if key in ("high_high", "low_low", "high_low", "low_high", "hot_spot", "cold_spot")
    ]


# One classification per view: a new view is one function and one line here.
_CLASSIFY = {"share": _shares, "informal": _shares, "lq": _lq, "lisa": _clusters, "hotspots": _clusters}


def summary_text(vd: ViewData, top: int = 3, tr=None) -> str:
    """A text alternative for the map (English unless ``tr`` is given): see :func:`maps.text.summary_text`."""
    from .text import ENGLISH
    from .text import summary_text as text

    return text(vd, tr or ENGLISH, top)
