"""What a map says in words, in the reader's language: view titles, legend labels, the significance sentences
and the text summary (the map's alt text). The numbers come from a :class:`maps.data.ViewData`, itself made
from the protected table; labels there are English keys, translated here for display only.
"""

from __future__ import annotations

import math

import numpy as np

from .data import CLUSTER_VIEWS, LQ_BREAKS, LQ_LABELS, SUPPRESSED, UNTESTED, VIEW_TITLES, ViewData
from .i18n import ENGLISH, Tr, _

CORRECTIONS = {"fdr": _("FDR (Benjamini–Hochberg)"), "bonferroni": _("Bonferroni"), "none": ""}
SCHEME_NAMES = {
    "quantiles": _("quantiles"),
    "natural_breaks": _("natural breaks"),
    "equal_interval": _("equal interval"),
}
# The English texts of maps/data.py, listed so the catalogues carry them (they are translated where shown).
DATA_MESSAGES = (
    _("Share of group"),
    _("Location quotient"),
    _("LISA clusters"),
    _("Gi* hot and cold spots"),
    _("Share in informal settlements"),
    _("High-High"),
    _("Low-Low"),
    _("High-Low"),
    _("Low-High"),
    _("Not significant"),
    _("No neighbours"),
    _("No population"),
    _("Hot spot"),
    _("Cold spot"),
    _("Hidden (small counts)"),
)
STATISTICS = {"lq": _("Location quotient"), "lisa": _("Local Moran's I"), "hotspots": _("Gi* z")}


def view_title(view: str, tr: Tr = ENGLISH) -> str:
    return tr(VIEW_TITLES[view])


def in_sentence(title: str, tr: Tr) -> str:
    """A view title inside a sentence: lower-case first letter except in German and for acronyms ("LISA")."""
    first = title.split(" ", 1)[0]
    if tr.lang == "de" or not first.isalpha() or not first[1:].islower():  # "LISA", "Gi*"
        return title
    return title[0].lower() + title[1:]


def title(vd: ViewData, tr: Tr = ENGLISH) -> str:
    return f"{view_title(vd.view, tr)}: {vd.group}"


def _lq_labels(tr: Tr) -> list[str]:
    a, b, c, d = (tr.num(x, 0 if float(x).is_integer() else 1 if round(x, 1) == x else 2) for x in LQ_BREAKS)
    return [
        tr("under {a} (far below city)", a=a),
        tr("{a} – {b}", a=a, b=b),
        tr("{a} – {b} (near city share)", a=b, b=c),
        tr("{a} – {b}", a=c, b=d),
        tr("{a} and over (far above city)", a=d),
    ]


def label_map(vd: ViewData, tr: Tr = ENGLISH) -> dict[str, str]:
    """Each English label of ``vd`` (legend rows and areas) to what the page shows in ``tr``'s language."""
    out = {SUPPRESSED[0]: tr(SUPPRESSED[0])}
    if vd.view == "lq":
        out.update(zip(LQ_LABELS, _lq_labels(tr)))
    elif vd.view in CLUSTER_VIEWS:
        out.update({lab: tr(lab) for lab, _c, _n in vd.legend})
    else:  # share classes: "lo – hi" from the bins, formatted for the locale
        bins = vd.meta.get("bins", [])
        shares = vd.frame["share"].to_numpy(dtype=float)
        lows = [np.nanmin(shares) if np.isfinite(shares).any() else 0.0, *bins[:-1]]
        shown = [lab for lab, _c, _n in vd.legend if lab != SUPPRESSED[0]]
        out.update({lab: f"{tr.pct(lo)} – {tr.pct(hi)}" for lab, lo, hi in zip(shown, lows, bins)})
    return out


def legend_subtitle(vd: ViewData, tr: Tr = ENGLISH) -> str:
    m = vd.meta
    if vd.view in CLUSTER_VIEWS and m["correction"] == "none":
        return tr(
            "α = {alpha}, no correction, {permutations} permutations",
            alpha=tr.num(m["alpha"], 2),
            permutations=tr.int(m["permutations"]),
        )
    if vd.view in CLUSTER_VIEWS:
        return tr(
            "α = {alpha}, {correction} correction, {permutations} permutations",
            alpha=tr.num(m["alpha"], 2),
            correction=tr(CORRECTIONS[m["correction"]]),
            permutations=tr.int(m["permutations"]),
        )
    if vd.scheme:
        return tr("{scheme}, {k} classes", scheme=tr(SCHEME_NAMES[vd.scheme]), k=vd.k)
    return ""


def _chance(alpha: float, tested: int, tr: Tr) -> str:
    return tr.int(alpha * tested) if alpha * tested >= 1 else tr.num(alpha * tested, 2)


def difference_sentence(vd: ViewData, tr: Tr = ENGLISH) -> str | None:
    """One plain sentence on solid (passes the correction) against hatched (p < α before it only)."""
    sig = vd.meta.get("summary", {}).get("significance")
    if vd.view not in CLUSTER_VIEWS or not sig or not sig.get("tested"):
        return None
    m = vd.meta
    if m["correction"] == "none":
        return tr(
            "No correction for testing {tested} areas at once: about {chance} of them would have p ≤ {alpha} by "
            "chance alone, so these colours are places to look at, not findings.",
            tested=tr.int(sig["tested"]),
            chance=_chance(m["alpha"], sig["tested"], tr),
            alpha=tr.num(m["alpha"], 2),
        )
    return tr(
        "Solid colours pass the {correction} correction for testing {tested} areas at once; hatched areas have "
        "p ≤ {alpha} only before it, which about {chance} areas would reach by chance alone: places to look at, "
        "not findings.",
        correction=tr(CORRECTIONS[m["correction"]]),
        tested=tr.int(sig["tested"]),
        alpha=tr.num(m["alpha"], 2),
        chance=_chance(m["alpha"], sig["tested"], tr),
    )


def none_pass_sentence(vd: ViewData, tr: Tr = ENGLISH) -> str | None:
    """Why no area passes the correction: areas tested, permutations, correction and the p it needs."""
    sig = vd.meta.get("summary", {}).get("significance")
    if vd.view not in CLUSTER_VIEWS or not sig or sig.get("significant") or vd.meta["correction"] == "none":
        return None
    m, tested = vd.meta, sig.get("tested", 0)
    if not tested:
        return tr("No area could be tested: no area has neighbours with people.")
    p = vd.frame["p_value"].to_numpy(dtype=float)
    values = {
        "tested": tr.int(tested),
        "correction": tr(CORRECTIONS[m["correction"]]),
        "alpha": tr.num(m["alpha"], 2),
        "needed": tr.p(sig.get("first_threshold")),
        "permutations": tr.int(m["permutations"]),
        "smallest": tr.p(sig.get("smallest_possible_p")),
        "best": tr.p(float(np.nanmin(p))) if np.isfinite(p).any() else "–",
    }
    if sig.get("smallest_possible_p") and sig["smallest_possible_p"] > sig.get("first_threshold", 0):
        return tr(
            "No area passes: with {tested} areas tested, the {correction} correction at α = {alpha} needs "
            "p ≤ {needed} for the strongest one, but {permutations} permutations cannot give a p below "
            "{smallest}.",
            **values,
        )
    return tr(
        "No area passes: with {tested} areas tested, the {correction} correction at α = {alpha} needs "
        "p ≤ {needed} for the strongest one; with {permutations} permutations the smallest p here is {best}.",
        **values,
    )


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def summary_text(vd: ViewData, tr: Tr = ENGLISH, top: int = 3) -> str:
    """A text alternative for the map: what a sighted reader would take from it."""
    f, labels = vd.frame, label_map(vd, tr)
    parts = [
        tr(
            "Map of {title} for {group} across {n} areas.",
            title=in_sentence(view_title(vd.view, tr), tr),
            group=vd.group,
            n=tr.int(len(f)),
        )
    ]
    if vd.view in ("share", "informal", "lq"):
        col = "share" if vd.view != "lq" else "value"
        best = f.dropna(subset=[col]).nlargest(top, col)
        fmt = tr.pct if col == "share" else (lambda v: tr.num(v, 2))
        if vd.view != "lq" and _finite(vd.meta.get("city_share")):
            parts.append(tr("City-wide share {share}.", share=tr.pct(vd.meta["city_share"])))
        highest = ", ".join(f"{r['name']} ({fmt(r[col])})" for _, r in best.iterrows())
        parts.append(tr("Highest: {areas}.", areas=highest))
    else:
        parts += _cluster_summary(vd, tr, labels)
    classes = "; ".join(tr("{label} ({n} areas)", label=labels.get(lab, lab), n=tr.int(c)) for lab, _, c in vd.legend)
    parts.append(tr("Classes: {classes}.", classes=classes))
    return " ".join(parts)


def _cluster_summary(vd: ViewData, tr: Tr, labels: dict) -> list[str]:
    sig = [(lab, c) for lab, _, c in vd.legend if lab not in UNTESTED]
    m = vd.meta
    message = (
        _("{n} areas have p ≤ {alpha} with no correction: {classes}.")
        if m.get("correction") == "none"
        else _("{n} areas are significant at alpha {alpha} after {correction} correction: {classes}.")
    )
    parts = [
        tr(
            message,
            n=tr.int(sum(c for _, c in sig)),
            alpha=tr.num(m.get("alpha"), 2),
            correction=tr(CORRECTIONS.get(m.get("correction"), "")),
            classes=", ".join(f"{tr.int(c)} {labels.get(lab, lab)}" for lab, c in sig),
        )
    ]
    hatched = [row for row in m.get("uncorrected", []) if row["count"]]
    if hatched:
        parts.append(
            tr(
                "Hatched, p ≤ {alpha} before correction only: {classes}.",
                alpha=tr.num(m.get("alpha"), 2),
                classes=", ".join(f"{tr.int(r['count'])} {tr(r['label'])}" for r in hatched),
            )
        )
    significance = m.get("summary", {}).get("significance")
    if significance and tr.lang == "en":  # the statistics' own sentence (English only), then ours
        parts.append(significance["explanation"])
    elif significance:
        parts.append(difference_sentence(vd, tr) or "")
    why = none_pass_sentence(vd, tr)
    if why:
        parts.append(why)
    return [p for p in parts if p]
