"""The comparison report of a batch run (one offline HTML file), and the per-place cluster map.

The report draws the tidy table (:mod:`spatial.batch.table`): a ranked dot plot with intervals per index,
group and date, each place's trajectory over time, a search by place name, and the failed jobs. It is one
file with its script and style inside (``templates/batch_report.html`` + ``web/batch_report.js``): no CDN, no
other request. Data enter only as JSON made by :func:`maps.templating.json_for_script`; the script writes
text with ``textContent`` and builds SVG with DOM calls, never HTML from data.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
from markupsafe import Markup

from .templating import HTML, json_for_script

WEB = Path(__file__).parent / "web"
DIGITS = 6  # significant digits kept in the embedded data (the table keeps full precision)


def _num(v):
    if v is None or (isinstance(v, float) and not math.isfinite(v)) or v is pd.NA:
        return None
    v = float(v)
    return float(f"{v:.{DIGITS}g}")


def _codes(values: pd.Series) -> tuple[list[str], list[int]]:
    cats = pd.Categorical(values.fillna("").astype(str))
    return [str(c) for c in cats.categories], [int(c) for c in cats.codes]


def report_data(table: pd.DataFrame) -> dict:
    """What the page draws: ok rows as compact arrays with code tables, failed jobs as text."""
    ok = table[table["status"] == "ok"]
    places, p = _codes(ok["place"])
    dates, d = _codes(ok["date"])
    groups, g = _codes(ok["group"])
    indices, i = _codes(ok["index"])
    best = ok["value_bias_corrected"].where(ok["value_bias_corrected"].notna(), ok["value"])
    rows = [
        [
            p[k],
            d[k],
            g[k],
            i[k],
            _num(v),
            _num(b),
            _num(lo),
            _num(hi),
            _num(pv),
            None if pd.isna(n) else int(n),
            _num(pop),
        ]
        for k, (v, b, lo, hi, pv, n, pop) in enumerate(
            zip(ok["value"], best, ok["ci_low"], ok["ci_high"], ok["p_value"], ok["n_areas"], ok["population"])
        )
    ]
    bad = table[table["status"] == "failed"]
    failed = [
        {"place": str(r.place), "date": "" if pd.isna(r.date) else str(r.date),
         "group": "" if pd.isna(r.group) else str(r.group), "error": "" if pd.isna(r.error) else str(r.error)}
        for r in bad.itertuples()
    ]  # fmt: skip
    return {
        "places": places,
        "dates": dates,
        "groups": groups,
        "indices": indices,
        "columns": [
            "place",
            "date",
            "group",
            "index",
            "value",
            "estimate",
            "ci_low",
            "ci_high",
            "p_value",
            "n_areas",
            "population",
        ],
        "rows": rows,
        "failed": failed,
        "jobs": int(table[["place", "date"]].drop_duplicates().shape[0]),
    }


def _script() -> Markup:
    text = (WEB / "batch_report.js").read_text(encoding="utf-8")
    return Markup(re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE))  # cannot end its element


def render_report(table: pd.DataFrame, title: str = "segmap batch report") -> str:
    """The report as one self-contained HTML page."""
    data = report_data(table)
    return HTML.get_template("batch_report.html").render(
        title=title,
        data=Markup(json_for_script(data)),  # escapes <, >, & and U+2028/9: inert inside <script>
        script=_script(),
        n_jobs=data["jobs"],
        n_failed=len({(f["place"], f["date"]) for f in data["failed"]}),
    )


def write_report(table: pd.DataFrame, path: str | Path, title: str = "segmap batch report") -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_report(table, title), encoding="utf-8")
    tmp.replace(path)


def place_map(public, group: str, path: Path, *, permutations: int, seed: int) -> None:
    """A PNG of the place's LISA clusters of ``group`` (FDR), from the protected table, as the service draws it."""
    from .data import view_data
    from .static import render

    vd = view_data(public, group, "lisa", permutations=permutations, seed=seed, max_permutations=max(permutations, 999))
    body, _ = render(public, vd, "png", width=900, height=700, dpi=100)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(body)
    tmp.replace(path)
