"""One entry point for every city-wide index, with optional inference and comparison."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..cancel import checkpoint
from ..dataset import TOLERANCE_HINT, AreaDataset
from ..errors import ValidationError, format_ids, problem
from ..results import IndexResult
from . import IndexSpec, get, names
from .options import IndexOptions

__all__ = ["IndexOptions", "compute_indices", "default_indices"]

DECAY_INDICES = {"spatial_proximity", "relative_clustering", "distance_decay_isolation", "distance_decay_exposure"}
REST = "rest"  # remainder column added to multigroup data when the groups don't fill the total


def default_indices(n_groups: int) -> list[str]:
    """Two-group indices always; multigroup ones when there are several groups."""
    out = names(kind="two_group", spatial=False)
    if n_groups >= 2:
        out += names(kind="multigroup", spatial=False)
    return out


def _two_group_data(ds: AreaDataset, group: str, total: str | None) -> tuple[np.ndarray, np.ndarray]:
    x, t = ds.counts(group, total)
    X, T = x.sum(), t.sum()
    if T <= 0:
        raise ValidationError(
            problem("empty_population", f"Total {total or ds.total!r} is 0 in every area: no index is defined")
        )
    if X <= 0 or X >= T:
        what = "has no members" if X <= 0 else "is the whole population"
        raise ValidationError(
            problem(
                "degenerate_group",
                f"Group {group!r} {what}; segregation indices need a group and a rest that both exist",
            )
        )
    return x, t


def _multigroup_data(ds: AreaDataset, groups: Sequence[str], total: str | None) -> tuple[np.ndarray, list[str]]:
    X = ds.matrix(groups)
    labels = list(groups)
    if total or len(groups) < 2:
        t = ds.column(total or ds.total)
        rest = t - X.sum(axis=1)
        over = rest < -1e-9
        if over.any():
            raise ValidationError(
                problem(
                    "overlapping_groups",
                    f"Groups {list(groups)} add up to more than {total or ds.total!r} in {int(over.sum())} areas "
                    f"({format_ids(ds.ids[over])}); multigroup indices need groups that do not overlap (where they are "
                    f"{TOLERANCE_HINT})",
                    ds.ids[over],
                )
            )
        if rest.sum() > 0:
            X = np.column_stack([X, np.clip(rest, 0, None)])
            labels.append(REST)
    present = X.sum(axis=0) > 0
    if present.sum() < 2:
        raise ValidationError(problem("degenerate_group", "Multigroup indices need at least two groups with members"))
    return X[:, present], [g for g, keep in zip(labels, present) if keep]


def compute_indices(
    dataset: AreaDataset,
    options: IndexOptions | None = None,
    *,
    progress: Callable | None = None,
    **fields,
) -> dict[str, IndexResult]:
    """Every index asked for in ``options`` (an :class:`IndexOptions`, or its fields as keywords), by name.

    ``groups`` names the group columns, the first being the focal one: two-group indices measure it
    against the rest of ``total``, multigroup indices use them all, plus a ``rest`` column for whatever
    part of the total (when one is given, or when only one group is) they don't cover. ``group=`` (the
    older form) is put first in ``groups``. ``params`` maps an index name to its parameters (e.g.
    ``{"atkinson": {"b": 0.3}}``). With ``permutations > 0`` every result carries a p-value against
    ``null``, a bias-corrected value and interval and the expected value under the null; ``compare``
    (another dataset) or ``compare_group`` (another group here) adds a two-sample comparison in
    ``extra["comparison"]``; ``multiscalar`` (metres) adds each aspatial two-group index's profile in
    ``extra["multiscalar"]`` (distance → value, 0 being the unsmoothed areas).
    """
    if options is not None and fields:
        raise TypeError("give compute_indices either an IndexOptions or its fields as keywords, not both")
    opts = (options or IndexOptions.of(**fields)).resolved(dataset)
    wanted = opts.indices or default_indices(len(opts.groups) + (1 if opts.total else 0))
    specs = [get(name) for name in wanted]
    sample = _Sample.of(dataset, specs, opts.groups, opts.total)
    other_ctx = _context(opts.compare) if opts.compare is not None and sample.ctx is not None else sample.ctx
    results: dict[str, IndexResult] = {}
    for step, spec in enumerate(specs):
        checkpoint()
        results[spec.name] = _index(spec, sample, opts, other_ctx, _scaled(progress, step, len(specs)))
    return results


@dataclass
class _Sample:
    """One dataset made ready once for every index: the focal counts, the multigroup matrix, spatial context."""

    dataset: AreaDataset
    ctx: object | None  # a SpatialContext when a spatial index is asked for
    two: tuple[np.ndarray, np.ndarray] | None
    multi: np.ndarray | None
    labels: list[str]
    smoothed: dict | None = None  # multiscalar populations, built once for every index

    @classmethod
    def of(cls, dataset, specs, groups, total) -> _Sample:
        ctx = _context(dataset) if any(s.spatial for s in specs) else None
        two = _two_group_data(dataset, groups[0], total) if any(s.kind == "two_group" for s in specs) else None
        multi, labels = (None, [])
        if any(s.kind == "multigroup" for s in specs):
            multi, labels = _multigroup_data(dataset, groups, total)
        return cls(dataset, ctx, two, multi, labels)

    def data(self, spec: IndexSpec) -> tuple:
        return self.two if spec.kind == "two_group" else (self.multi,)


def _context(dataset: AreaDataset):
    from .spatial_context import SpatialContext

    return SpatialContext(dataset)


def _index(spec: IndexSpec, sample: _Sample, opts: IndexOptions, other_ctx, progress) -> IndexResult:
    """One index: its value, what limits it (notes), and the extras and inference asked for."""
    ds = sample.dataset
    params = opts.params.get(spec.name, {})
    evaluate = spec.evaluator(sample.ctx, **params)
    data = sample.data(spec)
    res = IndexResult(
        name=spec.name,
        value=float(evaluate(*data)),
        groups=(opts.focal,) if spec.kind == "two_group" else tuple(sample.labels),
        total=opts.total or ds.total,
        params={**spec.defaults, **params},
    )
    if spec.name in DECAY_INDICES:
        _decay_truncation(res, sample)
    if getattr(evaluate, "undefined", None):
        res.notes.append(problem("undefined", evaluate.undefined))
    region = opts.region or ds.region_col
    if spec.name == "mutual_information" and region:
        from .multigroup import mutual_information_decomposition

        res.extra["decomposition"] = mutual_information_decomposition(sample.multi, ds.areas[region].to_numpy())
    if opts.multiscalar and spec.kind == "two_group" and not spec.spatial:
        res.extra["multiscalar"] = _multiscalar(spec, sample, opts)
    if opts.permutations:
        _infer(res, spec, evaluate, sample, opts, progress)
    if opts.comparing:
        res.extra["comparison"] = _compare(spec, evaluate, sample, opts, other_ctx)
    return res


def _decay_truncation(res: IndexResult, sample: _Sample) -> None:
    """What the dropped far pairs can change (rigorous), not just where they were cut."""
    ctx, name = sample.ctx, res.name
    res.params["decay_cutoff_km"] = round(ctx.decay_cutoff_km, 3)
    res.params.update(ctx.decay_truncation(name, *sample.two))
    bound = res.params["decay_max_relative_error"]
    if bound is not None and bound <= 1e-6:
        return
    budget = f" (memory limit {ctx.pair_budget:,} pairs)" if ctx.decay_budget_applied else ""
    size = f"up to {bound:.2g} of its value" if bound is not None and bound < 1 else "as much as the value itself"
    res.notes.append(
        problem(
            "decay_truncated",
            f"{name} is computed on the nearest pairs of areas only{budget}: it may differ from the full formula by "
            f"{size} (params.decay_max_abs_error); larger areas, or fewer of them, give the exact value",
        )
    )


def _multiscalar(spec: IndexSpec, sample: _Sample, opts: IndexOptions) -> dict:
    from .spatial_indices import multiscalar_profile, smoothed_counts

    if sample.smoothed is None:  # the distance pairs are built once for every index
        sample.smoothed = smoothed_counts(sample.dataset, opts.focal, opts.total, list(opts.multiscalar))
    profile = multiscalar_profile(sample.dataset, spec.name, smoothed=sample.smoothed)
    return {f"{d:g}": v for d, v in profile.items()}


def _infer(res: IndexResult, spec: IndexSpec, evaluate, sample: _Sample, opts: IndexOptions, progress) -> None:
    from .inference import infer

    chosen = opts.null or ("permutation" if spec.spatial else "random_allocation")
    if chosen == "permutation" and not spec.spatial:
        chosen = "random_allocation"  # aspatial indices don't change when areas are shuffled
    out = infer(
        evaluate,
        sample.data(spec),
        kind=spec.kind,
        null=chosen,
        permutations=opts.permutations,
        seed=opts.seed,
        ci_level=opts.ci_level,
        progress=progress,
        neighbours=sample.ctx.queen if spec.spatial else None,
    )
    for name in ("p_value", "ci_low", "ci_high", "expected", "null", "value_bias_corrected", "within_noise"):
        setattr(res, name, out[name])
    res.permutations, res.seed, res.interval_method = opts.permutations, opts.seed, out["interval_method"]
    if out["within_noise"]:
        res.notes.append(problem("within_noise", out["note"]))
    if out["interval_method"] == "test_inversion_asymptotic":
        if out.get("calibration_family", "scaled") == "scaled":
            res.notes.append(problem("interval_may_undercover", UNDERCOVER))
        elif spec.name not in MEASURED:
            res.notes.append(problem("interval_may_undercover", UNDERCOVER_UNMEASURED))
        elif np.median(sample.data(spec)[1]) < SMALL_AREAS:
            res.notes.append(problem("interval_may_undercover", UNDERCOVER_SMALL))


# measured in benchmarks/results/calibration_large.md; said with the large-city path's intervals that still scale
# observed shares (spatial and multigroup indices): aspatial two-group ones span a deconvolved family too
UNDERCOVER = (
    "the interval comes from the large-city calibration, whose bias correction for this index (observed shares "
    "scaled towards the city's) leaves a residual bias that does not shrink as areas are added: in simulation "
    "the 95 % interval of dissimilarity so made covered the truth 87-90 % of the time at 10,000 areas and 80 % "
    "at 100,000 (less beyond); read it as narrower than its nominal level"
)
# indices whose two-family interval's coverage was measured at 10,000 and 100,000 areas (each checked against
# benchmarks/results/calibration_large.md by tests/test_calibration_truth.py)
MEASURED = {"dissimilarity", "gini", "isolation", "exposure", "atkinson", "entropy"}
SMALL_AREAS = 200  # people in the median area below which the two-family interval was measured to under-cover
UNDERCOVER_SMALL = (
    "the interval comes from the large-city calibration; where areas are small its width is too narrow: in "
    "simulation (areas of ~20 people, D 0.4) its 95 % interval covered the truth 91 % of the time at 10,000 areas "
    "and 94 % at 100,000 (94-98 % with 200 people or more an area); read it as somewhat narrower than its "
    "nominal level"
)
UNDERCOVER_UNMEASURED = (
    "the interval comes from the large-city calibration, whose coverage was not measured for this index (for "
    "dissimilarity, gini, isolation, exposure, atkinson and entropy its 95 % interval covered the truth 94-98 % of "
    "the time at 10,000 and 100,000 areas with 200 people an area); read it as possibly narrower than its nominal "
    "level"
)


def _compare(spec: IndexSpec, evaluate, sample: _Sample, opts: IndexOptions, ctx_b) -> dict:
    """The same index on the other sample (``compare``, else ``compare_group`` here), and the difference."""
    from .inference import compare_samples

    other = opts.compare if opts.compare is not None else sample.dataset
    if spec.kind == "two_group":
        group = opts.compare_group or opts.focal
        data_b = _two_group_data(other, group, opts.total if opts.compare is None else None)
        label = f"{other.meta.name}:{group}"
    else:
        if opts.compare_group is not None:
            raise ValidationError(
                problem(
                    "bad_parameter", f"{spec.name} compares datasets, not groups: use compare with a multigroup index"
                )
            )
        data_b = (_multigroup_data(other, opts.groups, None)[0],)
        label = other.meta.name
    evaluate_b = spec.evaluator(ctx_b, **opts.params.get(spec.name, {})) if spec.spatial else evaluate
    out = compare_samples(
        evaluate,
        sample.data(spec),
        evaluate_b,
        data_b,
        kind=spec.kind,
        permutations=opts.compare_permutations,
        seed=opts.seed,
        ci_level=opts.ci_level,
        neighbours_a=sample.ctx.queen if spec.spatial else None,
        neighbours_b=ctx_b.queen if spec.spatial else None,
    )
    out["against"] = label
    return out


def _scaled(progress, step, steps):
    if progress is None:
        return None
    return lambda done, total: progress(step * total + done, steps * total)
