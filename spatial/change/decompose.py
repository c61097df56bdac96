"""Decomposing a change in segregation.

**M and H** (Elbers 2021, "A method for studying differences in segregation across time and space",
*Sociological Methods & Research*; the R package ``segregation``'s ``mutual_difference(method="shapley")``).
Counterfactual tables combine the group marginals (the city's composition), the unit marginals (the areas'
sizes) and the structure (the association between areas and groups, i.e. the odds ratios) of either date,
found by iterative proportional fitting (IPF). Shapley values over these three factors give::

    M2 − M1 = additions + removals + group_marginal + unit_marginal + structural

exactly. ``additions``/``removals`` are the change due to areas or groups with people at one date only.
``H`` is decomposed the same way over the same counterfactual tables. Each part has a bootstrap interval:
cell counts redrawn from a multinomial at each date, bias-corrected as the R package does.

**D** (Rey, Cortes & Knaap 2021): the difference in the dissimilarity index split into a spatial and an
attribute part with counterfactual populations, as pysal ``segregation``'s ``DecomposeSegregation``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from ..cancel import checkpoint
from ..errors import Problem, ValidationError, problem
from ..indices.aspatial import dissimilarity
from ..indices.multigroup import information_theory, mutual_information

INDICES = {"M": mutual_information, "H": information_theory}
PARTS = ("additions", "removals", "group_marginal", "unit_marginal", "structural")
STATS = ("value1", "value2", "diff", *PARTS)
FILL = 1e-10  # stands in for empty cells so IPF can reach every margin (the R package's choice)
MAX_BOOT = 9_999
BLOCK_CELLS = 4_000_000  # bootstrap draws per block: about this many table cells at once


@dataclass
class Shapley:
    """The decomposition (``table``: one row per stat, columns value, bias_corrected, se, ci_low, ci_high)."""

    index: str
    table: pd.DataFrame
    n_boot: int
    seed: int | None
    units: int
    groups: list[str]
    notes: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict:
        rows = self.table.reset_index().to_dict(orient="records")
        clean = [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()} for r in rows]
        return {"index": self.index, "n_boot": self.n_boot, "seed": self.seed, "units": self.units,
                "groups": self.groups, "parts": clean, "notes": [n.to_dict() for n in self.notes]}  # fmt: skip


def _table(counts, name: str, total: str | None) -> pd.DataFrame:
    if not isinstance(counts, pd.DataFrame):
        counts = pd.DataFrame(np.asarray(counts, dtype=float))
    df = counts.apply(pd.to_numeric, errors="coerce").astype(float)
    if df.shape[0] < 2 or df.shape[1] < 1:
        raise ValidationError(problem("too_small", f"{name} needs at least two areas and one group"))
    if total is not None:
        if total not in df.columns:
            raise ValidationError(problem("unknown_column", f"No total column {total!r} in {name}"))
        rest = "other" if "other" not in df.columns else "_other"
        df = df.assign(**{rest: df[total] - df.drop(columns=total).sum(axis=1)}).drop(columns=total)
    v = df.to_numpy()
    bad = ~np.isfinite(v).all(axis=1) | (v < 0).any(axis=1)
    if bad.any():
        raise ValidationError(
            problem("bad_count", f"{name}: missing, negative counts or groups above the total", df.index[bad])
        )
    if df.shape[1] < 2:
        raise ValidationError(problem("too_small", "Segregation needs two groups at least (or a total)"))
    return df


def _aligned(counts1, counts2, total) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both dates on the same areas and groups, or a 4xx saying which differ."""
    a, b = _table(counts1, "date 1", total), _table(counts2, "date 2", total)
    only1, only2 = a.columns.difference(b.columns), b.columns.difference(a.columns)
    if len(only1) or len(only2):
        raise ValidationError(
            problem(
                "groups_differ",
                f"The two dates have different groups (only at date 1: {list(only1)}; only at date 2: "
                f"{list(only2)}); rename them to match or drop them",
            )
        )
    u1, u2 = a.index.difference(b.index), b.index.difference(a.index)
    if len(u1) or len(u2) or a.index.has_duplicates or b.index.has_duplicates:
        raise ValidationError(
            problem(
                "units_differ",
                "The two dates must have the same areas (harmonise one geography onto the other first)",
                [*u1, *u2],
            )
        )
    return a, b.loc[a.index, a.columns]


def _common(X1: np.ndarray, X2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Areas and groups with people at both dates, among each other (``create_common_data`` in the R package)."""
    rows = np.ones(X1.shape[0], bool)
    cols = (X1.sum(axis=0) > 0) & (X2.sum(axis=0) > 0)
    while True:
        r = rows & (X1[:, cols].sum(axis=1) > 0) & (X2[:, cols].sum(axis=1) > 0)
        c = cols & (X1[r].sum(axis=0) > 0) & (X2[r].sum(axis=0) > 0)
        if (r == rows).all() and (c == cols).all():
            return rows, cols
        rows, cols = r, c


def ipf(seed: np.ndarray, rows: np.ndarray, cols: np.ndarray, precision: float = 1e-10, max_iter: int = 10_000):
    """Deming–Stephan IPF, batched over leading axes: a table with ``seed``'s odds ratios whose row and column
    proportions are ``rows`` (..., n) and ``cols`` (..., k) (each summing to 1), scaled to ``seed``'s total.
    Converged when the row proportions are off by at most ``precision`` in sum (columns are exact)."""
    total = seed.sum(axis=(-2, -1), keepdims=True)
    p = seed / total
    for i in range(max_iter):
        if i % 50 == 49:
            checkpoint()
        p = p * (rows / p.sum(axis=-1))[..., None]
        p = p * (cols / p.sum(axis=-2))[..., None, :]
        if np.abs(p.sum(axis=-1) - rows).sum(axis=-1).max() <= precision:
            return p * total
    raise ValidationError(problem("ipf_not_converged", "IPF did not converge; the tables are too sparse"))


def _parts(X1, X2, rows, cols, fn, fill, precision, max_iter) -> dict[str, np.ndarray]:
    """Every stat for tables X1, X2 of shape (..., n, k): Shapley over (group, unit, structure)."""
    A, B = X1[..., rows, :][..., cols], X2[..., rows, :][..., cols]
    FA, FB = np.where(A > 0, A, fill), np.where(B > 0, B, fill)

    def margins(F):
        p = F / F.sum(axis=(-2, -1), keepdims=True)
        return p.sum(axis=-1), p.sum(axis=-2)  # units (rows), groups (columns)

    (ua, ga), (ub, gb) = margins(FA), margins(FB)
    m = {"AAA": fn(A), "BBB": fn(B)}  # group, unit, structure
    for key, seed, u, g in (
        ("BBA", FA, ub, gb), ("ABA", FA, ub, ga), ("BAA", FA, ua, gb),
        ("AAB", FB, ua, ga), ("BAB", FB, ua, gb), ("ABB", FB, ub, ga),
    ):  # fmt: skip
        m[key] = fn(ipf(seed, u, g, precision, max_iter))
    M1, M2 = fn(X1), fn(X2)
    structural = 0.5 * (m["AAB"] - m["AAA"]) + 0.5 * (m["BBB"] - m["BBA"])
    group = 0.25 * (m["BAA"] - m["AAA"] + m["BBA"] - m["ABA"] + m["BBB"] - m["ABB"] + m["BAB"] - m["AAB"])
    unit = 0.25 * (m["ABA"] - m["AAA"] + m["BBA"] - m["BAA"] + m["BBB"] - m["BAB"] + m["ABB"] - m["AAB"])
    return {
        "value1": M1, "value2": M2, "diff": M2 - M1,
        "additions": M2 - m["BBB"], "removals": m["AAA"] - M1,
        "group_marginal": group, "unit_marginal": unit, "structural": structural,
    }  # fmt: skip


def _draws(rng, X: np.ndarray, b: int) -> np.ndarray:
    """``b`` multinomial redraws of all cells of X at its own (integer) total: shape (b, n, k)."""
    n = int(round(X.sum()))
    return rng.multinomial(n, (X / X.sum()).ravel(), size=b).reshape(b, *X.shape).astype(float)


def _summary(est: dict, boot: dict | None, ci: float) -> pd.DataFrame:
    """As the R package: debiased draws 2·est − boot; their mean, sd and percentile interval."""
    rows = {}
    for s in STATS:
        e = float(est[s])
        if boot is None:
            rows[s] = (e, np.nan, np.nan, np.nan, np.nan)
            continue
        d = 2 * e - boot[s]
        lo, hi = np.quantile(d, [(1 - ci) / 2, 1 - (1 - ci) / 2])
        rows[s] = (e, float(d.mean()), float(d.std(ddof=1)), float(lo), float(hi))
    cols = ["value", "bias_corrected", "se", "ci_low", "ci_high"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols).rename_axis("stat")


def shapley_decomposition(
    counts1,
    counts2,
    index: str = "M",
    n_boot: int = 0,
    *,
    total: str | None = None,
    ci: float = 0.95,
    seed: int | None = None,
    precision: float = 1e-10,
    max_iter: int = 10_000,
) -> Shapley:
    """Decompose index(counts2) − index(counts1) (tables of areas × groups, the same areas and groups at both
    dates; with ``total`` the groups are completed by its remainder, ``other``) into the parts of :data:`PARTS`."""
    if index not in INDICES:
        raise ValidationError(problem("bad_parameter", f"index must be one of {list(INDICES)}, not {index!r}"))
    if not 0 < ci < 1 or not 0 <= n_boot <= MAX_BOOT:
        raise ValidationError(
            problem("bad_parameter", f"ci must lie between 0 and 1 and n_boot between 0 and {MAX_BOOT}")
        )
    a, b = _aligned(counts1, counts2, total)
    X1, X2 = a.to_numpy(), b.to_numpy()
    if X1.sum() == 0 or X2.sum() == 0:
        raise ValidationError(problem("no_population", "One of the dates has nobody in it"))
    rows, cols = _common(X1, X2)
    positive = np.concatenate([X1[X1 > 0], X2[X2 > 0]])
    fill = min(FILL, positive.min() / 1000)
    fn = INDICES[index]
    est = _parts(X1, X2, rows, cols, fn, fill, precision, max_iter)
    boot = None
    if n_boot:
        if not (np.allclose(X1, np.round(X1)) and np.allclose(X2, np.round(X2))):
            raise ValidationError(problem("not_counts", "The bootstrap needs whole-number counts"))
        rng = np.random.default_rng(seed)
        step = max(1, BLOCK_CELLS // X1.size)
        blocks = []
        for start in range(0, n_boot, step):
            checkpoint()  # a request that gave up stops here
            m = min(step, n_boot - start)
            blocks.append(_parts(_draws(rng, X1, m), _draws(rng, X2, m), rows, cols, fn, fill, precision, max_iter))
        boot = {s: np.concatenate([blk[s] for blk in blocks]) for s in STATS}
    notes = []
    if not rows.all() or not cols.all():
        notes.append(
            problem(
                "not_at_both_dates",
                f"{int((~rows).sum())} areas and {int((~cols).sum())} groups have people at one date only: "
                "their effect is in additions and removals",
                a.index[~rows],
            )
        )
    return Shapley(index, _summary(est, boot, ci), n_boot, seed, int(rows.sum()), [str(c) for c in a.columns], notes)


# --- D: spatial and attribute parts (Rey, Cortes & Knaap 2021) -------------------------------------------------


def _swap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each value of ``a`` replaced by the value at its percentile rank in ``b`` (pandas rank(pct=True),
    linear quantiles), as pysal's counterfactual simulators do."""
    return np.quantile(b, rankdata(a, method="average") / len(a))


def _ratio(x, y):
    return np.divide(x, y, out=np.zeros(len(x)), where=y != 0)


def _counterfactual(x1, t1, x2, t2, approach: str) -> tuple[np.ndarray, np.ndarray]:
    """Date 1's areas with date 2's distribution: (group, total) counterfactual counts."""
    if approach == "composition":
        return _swap(_ratio(x1, t1), _ratio(x2, t2)) * t1, t1
    c1, c2 = t1 - x1, t2 - x2
    if approach == "dual_composition":
        g = _swap(_ratio(x1, t1), _ratio(x2, t2)) * t1
        return g, g + _swap(_ratio(c1, t1), _ratio(c2, t2)) * t1
    s = _swap(_ratio(x1, np.full_like(x1, x1.sum())), _ratio(x2, np.full_like(x2, x2.sum())))
    sc = _swap(_ratio(c1, np.full_like(c1, c1.sum())), _ratio(c2, np.full_like(c2, c2.sum())))
    g = np.nan_to_num(s / s.sum() * x1.sum())
    return g, g + np.nan_to_num(sc / sc.sum() * c1.sum())


def decompose_dissimilarity(x1, t1, x2, t2, approach: str = "composition") -> dict[str, float]:
    """D2 − D1 = spatial + attribute (Shapley over counterfactual populations). Note the sign: pysal's
    ``DecomposeSegregation(index1, index2)`` reports D1 − D2, so its ``c_s``/``c_a`` are −spatial/−attribute.
    ``indices`` are D with the spatial structure of one date and the attributes of another (s1_a2 …)."""
    if approach not in ("composition", "share", "dual_composition"):
        raise ValidationError(
            problem("bad_parameter", "approach must be composition, share or dual_composition, not " + repr(approach))
        )
    arrs = [np.asarray(v, dtype=float) for v in (x1, t1, x2, t2)]
    for k, v in enumerate(arrs):
        if not np.isfinite(v).all() or (v < 0).any():
            raise ValidationError(problem("bad_count", f"argument {k + 1} has missing or negative counts"))
    x1, t1, x2, t2 = arrs
    if x1.ndim != 1 or x1.shape != t1.shape or x2.ndim != 1 or x2.shape != t2.shape or min(len(x1), len(x2)) < 2:
        raise ValidationError(
            problem("bad_shape", "Each date needs one group count and one total per area (two areas at least)")
        )
    if (x1 > t1).any() or (x2 > t2).any():
        raise ValidationError(problem("bad_count", "A group count exceeds its area's total"))
    for x, t in ((x1, t1), (x2, t2)):
        if x.sum() == 0 or x.sum() == t.sum():
            raise ValidationError(problem("no_population", "D needs people in and out of the group at both dates"))
    d = {"s1_a1": dissimilarity(x1, t1), "s2_a2": dissimilarity(x2, t2)}
    d["s1_a2"] = dissimilarity(*_counterfactual(x1, t1, x2, t2, approach))
    d["s2_a1"] = dissimilarity(*_counterfactual(x2, t2, x1, t1, approach))
    d = {k: float(v) for k, v in d.items()}
    spatial = 0.5 * (d["s2_a1"] - d["s1_a1"] + d["s2_a2"] - d["s1_a2"])
    attribute = 0.5 * (d["s1_a2"] - d["s1_a1"] + d["s2_a2"] - d["s2_a1"])
    return {"d1": d["s1_a1"], "d2": d["s2_a2"], "diff": d["s2_a2"] - d["s1_a1"], "spatial": spatial,
            "attribute": attribute, "approach": approach, "indices": d}  # fmt: skip
