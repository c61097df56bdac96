"""City-scale spatial indices and 999-simulation inference: segmap vs pysal `segregation`, same process."""

from __future__ import annotations

import warnings
from pathlib import Path

from benchmarks.common import grid_city, header, table, timed, write
from spatial.indices.compute import compute_indices

warnings.filterwarnings("ignore")


def main(sizes=(1_000, 10_000), big=100_000) -> None:
    import segregation.singlegroup as sg
    from segregation.inference import SingleValueTest

    rows = []
    for n in sizes:
        ds = grid_city(n)
        ours, t_ours, m_ours = timed(compute_indices, ds, group="migrants", indices=["spatial_dissimilarity"])
        ref, t_ref, m_ref = timed(sg.SpatialDissim, ds.areas, "migrants", "total")
        rows.append(
            {
                "task": "spatial_dissimilarity",
                "areas": n,
                "segmap s": t_ours,
                "pysal s": t_ref,
                "speed-up": t_ref / t_ours,
                "segmap MB": m_ours,
                "pysal MB": m_ref,
                "abs diff": abs(ours["spatial_dissimilarity"].value - ref.statistic),
            }
        )
    for n in sizes[:1]:
        ds = grid_city(n)
        _, t_ours, m_ours = timed(
            compute_indices, ds, group="migrants", indices=["dissimilarity"], permutations=999, seed=1
        )
        idx = sg.Dissim(ds.areas, "migrants", "total")
        sims = 99  # pysal rebuilds the index per simulation: 99 of them, scaled to 999
        _, t_ref, m_ref = timed(SingleValueTest, idx, iterations_under_null=sims, null_approach="systematic", n_jobs=1)
        rows.append(
            {
                "task": "dissimilarity + 999 sims",
                "areas": n,
                "segmap s": t_ours,
                "pysal s": t_ref * 999 / sims,
                "speed-up": t_ref * 999 / sims / t_ours,
                "segmap MB": m_ours,
                "pysal MB": m_ref,
                "abs diff": "n/a",
            }
        )
    ds = grid_city(big)
    x, t = ds.counts("migrants")
    from spatial.indices import get, names

    slowest = max((timed(get(n).evaluator(), x, t)[1], n) for n in names(kind="two_group", spatial=False))
    rows.append(
        {
            "task": f"slowest aspatial two-group index ({slowest[1]})",
            "areas": big,
            "segmap s": slowest[0],
            "pysal s": "",
            "speed-up": "",
            "segmap MB": "",
            "pysal MB": "",
            "abs diff": "",
        }
    )
    _, t_sd, m_sd = timed(compute_indices, ds, group="migrants", indices=["spatial_dissimilarity"])
    rows.append(
        {
            "task": "spatial_dissimilarity (incl. contiguity set-up)",
            "areas": big,
            "segmap s": t_sd,
            "pysal s": "not run (n×n dense: ~80 GB)",
            "speed-up": "",
            "segmap MB": m_sd,
            "pysal MB": "",
            "abs diff": "",
        }
    )
    import numpy as np

    from spatial.indices.inference import _block_size, _drawers, _simulate

    evaluate = get("dissimilarity").evaluator()
    nulls, _ = _drawers((x, t), "two_group", np.random.default_rng(1))
    _, t_null, m_null = timed(_simulate, evaluate, nulls["random_allocation"], 999, _block_size(len(t), 1, None), None)
    rows.append(
        {
            "task": "dissimilarity, 999 null sims (the test alone)",
            "areas": big,
            "segmap s": t_null,
            "pysal s": "~360 (issue's measurement)",
            "speed-up": f"~{360 / t_null:.0f}",
            "segmap MB": m_null,
            "pysal MB": "",
            "abs diff": "",
        }
    )
    _, t_inf, m_inf = timed(compute_indices, ds, group="migrants", indices=["dissimilarity"], permutations=999, seed=1)
    rows.append(
        {
            "task": "dissimilarity, 999 null sims + 999 bootstrap draws",
            "areas": big,
            "segmap s": t_inf,
            "pysal s": "",
            "speed-up": "",
            "segmap MB": m_inf,
            "pysal MB": "",
            "abs diff": "",
        }
    )
    chicago = Path(__file__).resolve().parents[2] / "shared" / "data" / "chicago" / "Chicago_2020.geojson"
    if chicago.exists():  # real data: Chicago's 2020 community data snapshot
        from spatial.io import load_dataset

        ds = load_dataset(chicago, key="GEOID", groups=["FOR_BORN"], total="TOT_POP")
        ours, t_ours, m_ours = timed(compute_indices, ds, group="FOR_BORN", indices=["spatial_dissimilarity"])
        ref, t_ref, m_ref = timed(sg.SpatialDissim, ds.metric, "FOR_BORN", "TOT_POP")
        rows.append(
            {
                "task": "spatial_dissimilarity, Chicago 2020 (real)",
                "areas": ds.n,
                "segmap s": t_ours,
                "pysal s": t_ref,
                "speed-up": t_ref / t_ours,
                "segmap MB": m_ours,
                "pysal MB": m_ref,
                "abs diff": abs(ours["spatial_dissimilarity"].value - ref.statistic),
            }
        )
        _, t_ours, m_ours = timed(
            compute_indices, ds, group="FOR_BORN", indices=["dissimilarity"], permutations=999, seed=1
        )
        _, t_ref, m_ref = timed(
            SingleValueTest,
            sg.Dissim(ds.metric, "FOR_BORN", "TOT_POP"),
            iterations_under_null=99,
            null_approach="systematic",
            n_jobs=1,
        )
        rows.append(
            {
                "task": "dissimilarity + 999 sims, Chicago 2020 (real)",
                "areas": ds.n,
                "segmap s": t_ours,
                "pysal s": t_ref * 999 / 99,
                "speed-up": t_ref * 999 / 99 / t_ours,
                "segmap MB": m_ours,
                "pysal MB": m_ref,
                "abs diff": "n/a",
            }
        )
    write(
        "indices",
        header("Indices: segmap vs pysal segregation 2.5.4")
        + table(rows)
        + "\npysal's SingleValueTest was timed on 99 simulations and scaled to 999 (it rebuilds the index object "
        "per simulation); segmap draws the 999 random-allocation simulations plus 999 bootstrap draws in blocks.\n",
    )


if __name__ == "__main__":
    main()
