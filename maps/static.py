"""PNG/SVG maps with matplotlib (no browser): title, legend, source attribution, scale bar, alt text."""

from __future__ import annotations

import io
import math
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from spatial.dataset import AreaDataset  # noqa: E402
from spatial.errors import ValidationError, problem  # noqa: E402

from .data import CLUSTER_VIEWS, SHARE_VIEWS, ViewData  # noqa: E402
from .i18n import ENGLISH, Tr  # noqa: E402
from .text import difference_sentence, label_map, legend_subtitle, none_pass_sentence, summary_text  # noqa: E402
from .text import title as view_title  # noqa: E402

MAX_DPI = 300
MAX_PIXELS = 6000  # per side
TOP_LABELS = 5  # areas named on the map


def _scale_length(width_m: float) -> float:
    """A round length (1, 2 or 5 × 10^n metres) about a fifth of the map width."""
    target = width_m / 5
    power = 10 ** math.floor(math.log10(target))
    return max(m * power for m in (1, 2, 5) if m * power <= target)


def render(
    dataset: AreaDataset,
    vd: ViewData,
    fmt: str = "png",
    *,
    width: int = 1200,
    height: int = 900,
    dpi: int = 150,
    title: str | None = None,
    tr: Tr = ENGLISH,
) -> tuple[bytes, str]:
    """Render ``vd`` to PNG or SVG bytes of ``width``×``height`` pixels; returns (bytes, alt text)."""
    if fmt not in ("png", "svg"):
        raise ValidationError(problem("bad_parameter", f"format must be png or svg, got {fmt!r}"))
    if not 10 <= dpi <= MAX_DPI:
        raise ValidationError(problem("bad_parameter", f"dpi must be between 10 and {MAX_DPI}, got {dpi}"))
    if not (100 <= width <= MAX_PIXELS and 100 <= height <= MAX_PIXELS):
        raise ValidationError(problem("bad_parameter", f"width and height must be between 100 and {MAX_PIXELS} pixels"))
    alt = summary_text(vd, tr)
    title = title or f"{dataset.meta.name}: {view_title(vd, tr)}"
    metric = dataset.metric
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    ax = fig.add_axes([0.02, 0.1, 0.68, 0.8])
    metric.plot(ax=ax, color=list(vd.frame["colour"]), edgecolor="#555555", linewidth=0.25)
    _hatched(ax, metric, vd)
    _top_labels(ax, metric, vd)
    ax.set_axis_off()
    ax.set_aspect("equal")
    # Titles and sources are free text: "$" is a dollar sign, not mathtext (a title "$\frac{" was a 500).
    fig.suptitle(title, x=0.02, y=0.97, ha="left", fontsize=12, fontweight="bold", parse_math=False)

    _legend(fig, vd, tr)
    _scale_bar(ax)
    _source(fig, dataset, tr)
    buf = io.BytesIO()
    if fmt == "png":
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Title": title, "Description": alt, "Software": "segmap"})
    else:
        fig.savefig(buf, format="svg", metadata={"Title": title, "Description": alt})
    plt.close(fig)
    data = buf.getvalue()
    if fmt == "svg":
        data = _svg_accessible(data, title, alt)
    return data, alt


def _hatched(ax, metric, vd: ViewData) -> None:
    """Areas with p ≤ α before the correction only: hatched in their would-be class colour, apart from the solid ones."""
    if "uncorrected" not in vd.frame:
        return
    colours = {row["key"]: row["colour"] for row in vd.meta.get("uncorrected", [])}
    for key, colour in colours.items():
        mask = (vd.frame["uncorrected"] == key).to_numpy()
        if mask.any():
            metric.loc[mask].plot(ax=ax, facecolor="none", edgecolor=colour, hatch="////", linewidth=0)


def _top_labels(ax, metric, vd: ViewData, top: int = TOP_LABELS) -> None:
    """The names of the top areas: highest values, or the strongest clusters (smallest p) of a cluster view."""
    f = vd.frame
    if vd.view in CLUSTER_VIEWS:
        shown = f[(f["class"].between(0, 3)) | (f.get("uncorrected", "") != "")]
        best = shown.nsmallest(top, "p_value")
    else:
        col = "share" if vd.view in SHARE_VIEWS else "value"
        best = f.dropna(subset=[col]).nlargest(top, col)
    points = metric.geometry.iloc[best.index].representative_point()
    for (_, row), pt in zip(best.iterrows(), points):
        ax.annotate(
            str(row["name"])[:40],
            (pt.x, pt.y),
            fontsize=7,
            ha="center",
            va="center",
            annotation_clip=False,
            parse_math=False,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "#333333", "lw": 0.4, "alpha": 0.85},
        )


def _wrap(text: str, width: int = 34) -> str:
    return textwrap.fill(text, width)


def _legend(fig, vd: ViewData, tr: Tr) -> None:
    # Swatch with its class number and text, so it reads without colour.
    shown = label_map(vd, tr)
    handles = [
        Patch(facecolor=c, edgecolor="#555555", label=_wrap(f"{i + 1}. {shown.get(lab, tr(lab))} ({tr.int(n)})"))
        for i, (lab, c, n) in enumerate(vd.legend)
    ]
    handles += [
        Patch(
            facecolor="#eeeeee",
            edgecolor=row["colour"],
            hatch="////",
            label=_wrap(f"{tr(row['label'])}: {tr('p ≤ α before correction only')} ({tr.int(row['count'])})"),
        )
        for row in vd.meta.get("uncorrected", [])
        if row["count"]
    ]
    fig.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(0.71, 0.9),
        frameon=False,
        fontsize=8,
        title=_wrap(legend_subtitle(vd, tr)) or None,
        title_fontsize=8,
        alignment="left",
    )
    why = " ".join(s for s in (difference_sentence(vd, tr), none_pass_sentence(vd, tr)) if s)
    if why:  # what solid and hatched mean, and why nothing passes
        fig.text(0.71, 0.08, _wrap(why, 44), fontsize=6.5, va="bottom", color="#222222", parse_math=False)


def _scale_bar(ax) -> None:
    """A scale bar in metres (the plot is in the dataset's metric CRS)."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    length = _scale_length(x1 - x0)
    bx, by = x0 + 0.03 * (x1 - x0), y0 + 0.03 * (y1 - y0)
    ax.add_patch(Rectangle((bx, by), length, 0.008 * (y1 - y0), color="black"))
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    ax.text(bx + length / 2, by + 0.015 * (y1 - y0), label, ha="center", va="bottom", fontsize=8)


def _source(fig, dataset: AreaDataset, tr: Tr) -> None:
    meta = dataset.meta
    text = tr("Source: {source}", source=meta.source or meta.name) + (f" ({meta.year})" if meta.year else "")
    if meta.licence:
        text += "; " + tr("licence: {licence}", licence=meta.licence)
    fig.text(0.02, 0.02, text + ". " + tr("Map: segmap."), fontsize=7, color="#333333", parse_math=False)


def _svg_accessible(svg: bytes, title: str, alt: str) -> bytes:
    """Give the SVG a role, <title> and <desc> that screen readers announce."""
    from xml.sax.saxutils import escape

    text = svg.decode("utf-8")
    i = text.index("<svg")
    j = text.index(">", i)
    head = text[i:j]
    if "role=" not in head:
        head += ' role="img" aria-labelledby="segmap-title segmap-desc"'
    text = (
        text[:i]
        + head
        + ">"
        + f'<title id="segmap-title">{escape(title)}</title><desc id="segmap-desc">{escape(alt)}</desc>'
        + text[j + 1 :]
    )
    return text.encode("utf-8")
