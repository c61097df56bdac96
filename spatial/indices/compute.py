"""One entry point for every city-wide index, with optional inference and comparison."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..cancel import checkpoint
from ..dataset import TOLERANCE_HINT, AreaDataset
from ..errors import ValidationError, format_ids, problem
from ..results import IndexResult
from . import IndexSpec, get, names

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
    *,
    group: str | None = None,
    groups: Sequence[str] | None = None,
    total: str | None = None,
    indices: Sequence[str] | None = None,
    params: dict | None = None,
    region: str | None = None,
    permutations: int = 0,
    seed: int | None = None,
    null: str | None = None,
    compare: AreaDataset | None = None,
    compare_group: str | None = None,
    progress: Callable | None = None,
    ci_level: float = 0.95,
    multiscalar: Sequence[float] | None = None,
) -> dict[str, IndexResult]:
    """Compute indices of ``group`` against the rest of ``total`` (two-group) and of ``groups`` (multigroup).

    ``params`` maps an index name to its parameters (e.g. ``{"atkinson": {"b": 0.3}}``).
    Multigroup data are the ``groups`` columns, plus a ``rest`` column for whatever part of the
    total (when one is given, or when only one group is) they don't cover.
    With ``permutations > 0`` every result carries a p-value against ``null``, a bootstrap
    interval and the expected value under the null; ``compare`` (another dataset) or
    ``compare_group`` (another group here) adds a two-sample comparison in ``extra["comparison"]``.
    ``multiscalar`` (distances in metres) adds each aspatial two-group index's multiscalar profile
    in ``extra["multiscalar"]`` (distance → value, 0 being the unsmoothed areas).
    """
    groups = list(groups or ([group] if group else dataset.groups))
    group = group or groups[0]
    wanted = list(indices) if indices else default_indices(len(groups) + (1 if total else 0))
    specs = [get(name) for name in wanted]
    params = params or {}
    permutations = int(permutations or 0)
    if permutations < 0:
        raise ValidationError(problem("bad_parameter", "permutations must be 0 or more"))
    region = region or dataset.region_col

    ctx = None
    if any(s.spatial for s in specs):
        from .spatial_context import SpatialContext

        ctx = SpatialContext(dataset)
        other_ctx = SpatialContext(compare) if compare is not None else None

    two = _two_group_data(dataset, group, total) if any(s.kind == "two_group" for s in specs) else None
    multi, labels = (
        _multigroup_data(dataset, groups, total) if any(s.kind == "multigroup" for s in specs) else (None, [])
    )
    total_name = total or dataset.total

    results: dict[str, IndexResult] = {}
    smoothed = None
    for step, spec in enumerate(specs):
        checkpoint()
        evaluate = spec.evaluator(ctx, **params.get(spec.name, {}))
        data = two if spec.kind == "two_group" else (multi,)
        value = float(evaluate(*data))
        res = IndexResult(
            name=spec.name,
            value=value,
            groups=(group,) if spec.kind == "two_group" else tuple(labels),
            total=total_name,
            params={**spec.defaults, **params.get(spec.name, {})},
        )
        if spec.name in DECAY_INDICES:
            # What the dropped far pairs can change (rigorous), not just where they were cut.
            res.params["decay_cutoff_km"] = round(ctx.decay_cutoff_km, 3)
            res.params.update(ctx.decay_truncation(spec.name, *two))
            bound = res.params["decay_max_relative_error"]
            if bound is None or bound > 1e-6:
                res.notes.append(
                    problem(
                        "decay_truncated",
                        (
                            f"{spec.name} is computed on the nearest pairs of areas only"
                            + (f" (memory limit {ctx.pair_budget:,} pairs)" if ctx.decay_budget_applied else "")
                            + ": it may differ from the full formula by "
                            + (
                                f"up to {bound:.2g} of its value"
                                if bound is not None and bound < 1
                                else "as much as the value itself"
                            )
                            + " (params.decay_max_abs_error); larger areas, or fewer of them, give the exact value"
                        ),
                    )
                )
        if getattr(evaluate, "undefined", None):
            res.notes.append(problem("undefined", evaluate.undefined))
        if spec.name == "mutual_information" and region:
            from .multigroup import mutual_information_decomposition

            res.extra["decomposition"] = mutual_information_decomposition(multi, dataset.areas[region].to_numpy())
        if multiscalar and spec.kind == "two_group" and not spec.spatial:
            from .spatial_indices import multiscalar_profile, smoothed_counts

            if smoothed is None:  # the distance pairs are built once for every index
                smoothed = smoothed_counts(dataset, group, total, multiscalar)
            profile = multiscalar_profile(dataset, spec.name, smoothed=smoothed)
            res.extra["multiscalar"] = {f"{d:g}": v for d, v in profile.items()}
        if permutations:
            from .inference import infer

            chosen = null or ("permutation" if spec.spatial else "random_allocation")
            if chosen == "permutation" and not spec.spatial:
                chosen = "random_allocation"  # aspatial indices don't change when areas are shuffled
            out = infer(
                evaluate,
                data,
                kind=spec.kind,
                null=chosen,
                permutations=permutations,
                seed=seed,
                ci_level=ci_level,
                progress=_scaled(progress, step, len(specs)),
                neighbours=ctx.queen if spec.spatial else None,
            )
            res.p_value, res.ci_low, res.ci_high, res.expected = (
                out["p_value"],
                out["ci_low"],
                out["ci_high"],
                out["expected"],
            )
            res.null, res.permutations, res.seed = out["null"], permutations, seed
            res.value_bias_corrected, res.within_noise = out["value_bias_corrected"], out["within_noise"]
            res.interval_method = out["interval_method"]
            if out["within_noise"]:
                res.notes.append(problem("within_noise", out["note"]))
        if compare is not None or compare_group is not None:
            res.extra["comparison"] = _compare(
                spec,
                evaluate,
                data,
                dataset,
                group,
                groups,
                total,
                params,
                compare,
                compare_group,
                other_ctx if compare is not None and ctx else ctx,
                permutations or 999,
                seed,
                ci_level,
                ctx_a=ctx,
            )
        results[spec.name] = res
    return results


def _compare(
    spec: IndexSpec,
    evaluate,
    data,
    dataset,
    group,
    groups,
    total,
    params,
    compare,
    compare_group,
    ctx_b,
    permutations,
    seed,
    ci_level,
    ctx_a=None,
) -> dict:
    from .inference import compare_samples

    other = compare if compare is not None else dataset
    if spec.kind == "two_group":
        data_b = _two_group_data(other, compare_group or group, total if compare is None else None)
        label = f"{other.meta.name}:{compare_group or group}"
    else:
        if compare_group is not None:
            raise ValidationError(
                problem(
                    "bad_parameter", f"{spec.name} compares datasets, not groups: use compare with a multigroup index"
                )
            )
        data_b = (_multigroup_data(other, groups, None)[0],)
        label = other.meta.name
    evaluate_b = spec.evaluator(ctx_b, **params.get(spec.name, {})) if spec.spatial else evaluate
    out = compare_samples(
        evaluate,
        data,
        evaluate_b,
        data_b,
        kind=spec.kind,
        permutations=permutations,
        seed=seed,
        ci_level=ci_level,
        neighbours_a=ctx_a.queen if spec.spatial else None,
        neighbours_b=ctx_b.queen if spec.spatial else None,
    )
    out["against"] = label
    return out


def _scaled(progress, step, steps):
    if progress is None:
        return None
    return lambda done, total: progress(step * total + done, steps * total)
