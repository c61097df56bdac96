"""`segmap batch` on a 2-worker LocalCluster: ~30 small jobs (Berlin's years when ../shared is there, places cut
from the bundled Georgia counties, deliberately broken inputs); a worker killed mid-run; interrupt and resume.

The bulk uses few simulations (the table's values are what is compared, not their precision)."""

from __future__ import annotations

import os
import signal
from collections import Counter
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from conftest import BUNDLED, SHARED_DATA
from spatial.batch import ManifestError, read_manifest, split_national
from spatial.batch.job import HIGH_HIGH, Options, load, run_job
from spatial.batch.table import COLUMNS, Store
from spatial.disclosure import protect

ROOT = Path(__file__).resolve().parents[1]
BERLIN = SHARED_DATA / "berlin"
# LISA permutations chosen for the FDR correction (the default): fewer could not find any cluster.
OPTIONS = Options(indices=("dissimilarity", "isolation"), permutations=19, seed=3)
CLI_OPTIONS = ["--index", "dissimilarity", "--index", "isolation", "--permutations", "19", "--seed", "3"]
CLI_OPTIONS += ["--disclosure-threshold", "10"]
HEADER = "place,date,boundaries,counts,key,groups,total"
BROKEN = {  # place → the words its error must contain
    "Missing": "not found",
    "Hostile vsi": "GDAL virtual path",
    "Hostile scheme": "URL scheme",
    "Wrong columns": "not_a_column",
    "No population": "no population",
    "Not a GeoPackage": "not GeoPackage",
}


def _georgia() -> gpd.GeoDataFrame:
    gdf = gpd.read_file(BUNDLED / "boundaries" / "georgia_counties.gpkg")
    counts = pd.read_csv(BUNDLED / "census" / "georgia_counties_1990.csv", dtype={"area_key": str})
    return gdf.merge(counts, on="area_key")


def _inputs(tmp: Path) -> tuple[list[str], gpd.GeoDataFrame]:
    """Manifest lines: 12 places cut from Georgia (west to east), Georgia whole, Berlin's years, broken rows."""
    gdf = _georgia()
    gdf["band"] = pd.qcut(gdf.geometry.centroid.x.rank(method="first"), 12, labels=False)
    lines = []
    for band, part in gdf.groupby("band"):
        path = tmp / f"georgia_{band}.parquet"
        part.drop(columns="band").to_parquet(path)
        lines.append(f"Georgia band {band:02d},1990,{path},,area_key,black,total_population")
    lines.append(
        f"Georgia,1990,{BUNDLED}/boundaries/georgia_counties.gpkg,{BUNDLED}/census/georgia_counties_1990.csv,"
        "area_key,black;foreign_born,total_population"
    )
    empty = gdf[gdf["band"] == 0].drop(columns="band").copy()
    empty[["total_population", "black", "foreign_born", "native_born", "not_black", "rural"]] = 0
    empty.to_parquet(tmp / "empty.parquet")
    (tmp / "text.gpkg").write_text("area_key,black\n1,2\n")
    lines += [
        f"Missing,1990,{tmp}/nowhere.gpkg,,area_key,black,total_population",
        "Hostile vsi,1990,/vsizip//etc/passwd.zip/x.shp,,area_key,black,total_population",
        "Hostile scheme,1990,ftp://example.org/x.gpkg,,area_key,black,total_population",
        f"Wrong columns,1990,{tmp}/georgia_1.parquet,,area_key,not_a_column,total_population",
        f"No population,1990,{tmp}/empty.parquet,,area_key,black,total_population",
        f"Not a GeoPackage,1990,{tmp}/text.gpkg,,area_key,black,total_population",
    ]
    if BERLIN.exists():
        ts = BERLIN / "timeseries"
        for year in range(2015, 2025):
            geo = "until-2020" if year <= 2020 else "from-2021"
            lines.append(
                f"Berlin,{year},{BERLIN}/berlin-lor-forecast-areas-{geo}.geojson,"
                f"{ts}/berlin-lor-population-{year}-02-t1-forecast-areas.csv,id,inhabitants_foreigners,inhabitants"
            )
        # Real-world breakage: two planning areas share the id 06010102 in the 2020 boundaries.
        lines.append(
            f"Berlin planning areas,2019,{BERLIN}/berlin-lor-planning-areas-until-2020.geojson,"
            f"{ts}/berlin-lor-population-2019-02-t1-planning-areas.csv,id,inhabitants_foreigners,inhabitants"
        )
    return lines, gdf


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("batch-inputs")
    lines, gdf = _inputs(tmp)
    manifest = tmp / "manifest.csv"
    manifest.write_text("\n".join([HEADER, *lines]) + "\n")
    return {"dir": tmp, "manifest": manifest, "lines": lines, "georgia": gdf, "jobs": read_manifest(manifest)}


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client

    from spatial.batch.engine import local_cluster

    with local_cluster(2, memory_limit="2GB") as cluster, Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def killed_run(inputs, client, tmp_path_factory):
    """Every job through the cluster, one busy worker killed (SIGKILL) after the third result."""
    import functools

    from spatial.batch.engine import run

    store = Store(tmp_path_factory.mktemp("batch-out"))
    calls, killed = Counter(), []

    def on_result(job, rows):
        calls[job.key_id] += 1
        store.add(job.place, job.date, rows)
        if sum(calls.values()) == 3:
            busy = [w for w, tasks in client.processing().items() if tasks] or list(client.processing())
            pids = client.run(os.getpid, workers=busy[:1])
            for pid in pids.values():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    run(inputs["jobs"], functools.partial(run_job, opts=OPTIONS), on_result, client=client)
    return {"table": store.finish(), "calls": calls, "killed": killed, "store": store}


def test_every_job_once_after_a_worker_is_killed(inputs, killed_run):
    assert killed_run["killed"], "no worker was killed"
    calls = killed_run["calls"]
    assert set(calls) == {j.key_id for j in inputs["jobs"]}
    assert set(calls.values()) == {1}  # each job reported exactly once
    table = killed_run["table"]
    assert list(table.columns) == list(COLUMNS)
    ok = table[table["status"] == "ok"]
    assert not ok.duplicated(["place", "date", "group", "index"]).any()
    assert not table["error"].fillna("").str.contains("failed on the cluster").any()  # rescheduled, not lost
    georgia = ok[ok["place"].str.startswith("Georgia band")]
    assert georgia["place"].nunique() == 12
    assert set(georgia["index"]) == {"dissimilarity", "isolation", HIGH_HIGH}


def test_broken_inputs_are_recorded_and_the_run_goes_on(killed_run):
    table = killed_run["table"]
    failed = table[table["status"] == "failed"].set_index("place")
    for place, words in BROKEN.items():
        assert place in failed.index, place
        assert words in failed.loc[place, "error"], (place, failed.loc[place, "error"])
    if BERLIN.exists():
        assert "duplicate" in failed.loc["Berlin planning areas", "error"]
        berlin = table[(table["place"] == "Berlin") & (table["status"] == "ok")]
        assert sorted(berlin["date"].unique()) == [str(y) for y in range(2015, 2025)]


def test_values_match_pysal_segregation(inputs, killed_run):
    """Dissimilarity and isolation of a job equal pysal segregation's on the same published (protected) areas."""
    from segregation.singlegroup import Dissim, Isolation

    table = killed_run["table"].set_index(["place", "date", "group", "index"])
    wanted = [j for j in inputs["jobs"] if j.place in ("Berlin", "Georgia band 05")]
    if BERLIN.exists():
        wanted = [j for j in wanted if j.place == "Georgia band 05" or j.date in ("2015", "2024")]
    for job in wanted:
        public = protect(load(job, OPTIONS), 10)
        areas = public.dataset.areas
        group, total = job.groups[0], job.total
        for name, cls in (("dissimilarity", Dissim), ("isolation", Isolation)):
            expected = cls(areas, group_pop_var=group, total_pop_var=total).statistic
            row = table.loc[(job.place, job.date, group, name)]
            assert row["value"] == pytest.approx(expected, abs=1e-9), (job.place, job.date, name)
            assert row["n_areas"] == len(areas) and row["population"] == pytest.approx(areas[total].sum())
            assert row["ci_low"] <= row["value_bias_corrected"] <= row["ci_high"]
            assert 0 < row["p_value"] <= 1


def test_high_high_summary_counts_people_in_fdr_clusters(inputs, killed_run):
    from spatial.local import local_statistic

    job = next(j for j in inputs["jobs"] if j.place == "Georgia")
    ds = protect(load(job, OPTIONS), 10).dataset
    res = local_statistic(ds, "black", "lisa", seed=3, correction="fdr")
    hh = set(res.ids[res.labels == "high_high"])
    areas = ds.areas[ds.areas["id"].isin(hh)]
    row = killed_run["table"].set_index(["place", "group", "index"]).loc[("Georgia", "black", HIGH_HIGH)]
    assert row["n_areas"] == len(hh) > 0
    assert row["population"] == areas["total_population"].sum()
    assert row["value"] == pytest.approx(areas["black"].sum() / ds.areas["black"].sum())


def _cli(*args) -> tuple[int, str, str]:
    """`segmap batch …` in this process (the real entry point), with its exit status, stdout and stderr."""
    import contextlib
    import io

    from app.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["batch", *args])
    return status, out.getvalue(), err.getvalue()


def test_interrupted_then_resumed_equals_an_uninterrupted_run(inputs, client, killed_run, tmp_path, monkeypatch):
    """Ctrl-C after the third finished job (KeyboardInterrupt in the result loop, where the signal lands), then
    --resume, on the running cluster (--scheduler): the table equals the uninterrupted run's."""
    from app.cli import batch as cli

    lines = [ln for ln in inputs["lines"] if ln.startswith("Georgia band 0")][:6]
    lines += [ln for ln in inputs["lines"] if ln.startswith(("Missing", "Berlin,201"))][:6]
    manifest = tmp_path / "part.csv"
    manifest.write_text("\n".join([HEADER, *lines]) + "\n")
    out = tmp_path / "out"
    args = [str(manifest), "-o", str(out), "--scheduler", client.scheduler.address, *CLI_OPTIONS]
    seen = cli.Progress.__call__

    def interrupt(self, rows):
        seen(self, rows)
        if self.done == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli.Progress, "__call__", interrupt)
    status, _, err = _cli(*args)
    assert status == 130 and "3 finished jobs are kept: rerun with --resume" in err
    assert len(list((out / "jobs").glob("*.parquet"))) == 3 and not (out / "results.parquet").exists()
    monkeypatch.setattr(cli.Progress, "__call__", seen)

    status, _, err = _cli(*args)  # without --resume: refused, nothing run
    assert status == 2 and "--resume" in err
    status, stdout, err = _cli(*args, "--resume")
    assert status == 1, err  # 1: the run finished and a job failed (Missing)
    assert f"{len(lines) - 3} jobs run, 3 already done" in stdout
    table = pd.read_parquet(out / "results.parquet")
    ref = killed_run["table"]
    keys = {tuple(ln.split(",")[:2]) for ln in lines}
    ref = ref[[(p, d) in keys for p, d in zip(ref["place"], ref["date"])]].reset_index(drop=True)
    pd.testing.assert_frame_equal(table, ref)
    csv = pd.read_csv(out / "results.csv", dtype={"date": str})
    assert list(csv.columns) == list(COLUMNS) and len(csv) == len(table)


def test_malformed_manifest_is_refused_before_anything_starts(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        f"{HEADER}\n"
        "Georgia,1990,a.gpkg,,area_key,black,total_population\n"
        ",1990,a.gpkg,,area_key,black,total_population\n"
        "Georgia,1990,b.gpkg,,area_key,black,total_population\n"
        "Other,1990,a.gpkg,c.csv,,1black,total_population\n"
        "Short,1990\n"
    )
    with pytest.raises(ManifestError) as err:
        read_manifest(bad)
    text = str(err.value)
    for expected in ("line 3: place is empty", "line 4: place 'Georgia' at date '1990' is already on line 2",
                     "line 5: counts needs key", "line 5: column name '1black'", "line 6: 2 fields"):  # fmt: skip
        assert expected in text, text
    status, _, stderr = _cli(str(bad), "-o", str(tmp_path / "out"))
    assert status == 2 and "line 3: place is empty" in stderr
    status, _, stderr = _cli(str(bad), "-o", str(tmp_path / "out"), "--index", "nope", "--alpha", "2")
    assert status == 2 and "--alpha must be between 0 and 1" in stderr
    assert not (tmp_path / "out" / "results.parquet").exists()

    head = tmp_path / "head.csv"
    head.write_text("place,boundary,groups\nA,a.gpkg,x\n")
    with pytest.raises(
        ManifestError, match=r"line 1: unknown columns \['boundary'\]; missing columns \['boundaries'\]"
    ):
        read_manifest(head)


def test_yaml_manifest_names_lines_and_resolves_paths(tmp_path):
    (tmp_path / "m.yaml").write_text(
        "jobs:\n"
        "  - place: A\n    date: 2020\n    boundaries: a.gpkg\n    groups: [x, y]\n    memory: 2GB\n"
        "  - place: B\n    boundaries: b.gpkg\n    groups: ''\n"
    )
    with pytest.raises(ManifestError, match="line 7: groups is empty"):
        read_manifest(tmp_path / "m.yaml")
    (tmp_path / "m.yaml").write_text("- {place: A, date: 2020, boundaries: a.gpkg, groups: [x, y], memory: 2GB}\n")
    (job,) = read_manifest(tmp_path / "m.yaml")
    assert (job.place, job.date, job.groups, job.memory) == ("A", "2020", ("x", "y"), 2 * 1024**3)
    assert job.boundaries == str(tmp_path / "a.gpkg")


def test_national_file_is_split_by_place_and_date(inputs, killed_run, client, tmp_path):
    """One national GeoParquet with place and date columns gives the same rows as the manifest's files."""
    gdf = inputs["georgia"].copy()
    gdf["place"] = [f"Georgia band {b:02d}" for b in gdf.pop("band")]
    gdf["date"] = 1990
    national = tmp_path / "national.parquet"
    # Places in reverse order, each one's areas in the manifest files' order (the seeded draws follow area order).
    gdf.sort_values("place", ascending=False, kind="stable").to_parquet(national)
    jobs = split_national(national, tmp_path / "out", groups=["black"], total="total_population", key="area_key")
    assert [(j.place, j.date) for j in jobs] == [(f"Georgia band {b:02d}", "1990") for b in range(12)]
    ref = killed_run["table"].set_index(["place", "date", "group", "index"])
    rows = pd.DataFrame(run_job(jobs[4], OPTIONS)).set_index(["place", "date", "group", "index"])
    for key, row in rows.iterrows():
        for col in ("value", "ci_low", "ci_high", "p_value", "n_areas", "population"):
            assert row[col] == pytest.approx(ref.loc[key, col], nan_ok=True), (key, col)
    assert np.isfinite(rows["value"]).all()

    # The same file through `segmap batch`: the table equals the manifest run's rows of those places.
    args = [str(national), "-o", str(tmp_path / "cli"), "--scheduler", client.scheduler.address, *CLI_OPTIONS]
    status, stdout, err = _cli(*args, "--group", "black", "--total", "total_population", "--key", "area_key")
    assert status == 0, err
    table = pd.read_parquet(tmp_path / "cli" / "results.parquet")
    ref = killed_run["table"]
    ref = ref[ref["place"].str.startswith("Georgia band")].reset_index(drop=True)
    pd.testing.assert_frame_equal(table, ref)


def test_per_place_outputs_and_fsspec_urls(inputs, killed_run, tmp_path):
    """--outputs: the LISA result as GeoParquet (withheld areas kept, labelled suppressed) and a PNG map; a file://
    URL is read through fsspec, as bytes, with the same checks and the same rows."""

    from maps.batch_report import place_map
    from spatial.batch.national import part_name

    job = next(j for j in inputs["jobs"] if j.place == "Georgia band 03")
    job = replace(job, boundaries=Path(job.boundaries).as_uri())
    rows = run_job(job, replace(OPTIONS, outputs=str(tmp_path)), writer=place_map)
    ref = killed_run["table"].set_index(["place", "date", "group", "index"])
    for row in rows:
        key = (row["place"], row["date"], row["group"], row["index"])
        assert row["value"] == pytest.approx(ref.loc[key, "value"]), key
    folder = tmp_path / part_name(job.place, job.date).removesuffix(".parquet")
    local = gpd.read_parquet(folder / "lisa_black.parquet")
    public = protect(load(job, OPTIONS), 10)
    assert len(local) == public.n and local.crs == public.areas.crs
    assert (local["label"] == "suppressed").sum() == public.withheld.sum()
    assert local.loc[local["label"] == "suppressed", "value"].isna().all()
    assert (folder / "lisa_black.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_job_asking_more_memory_than_any_worker_fails_alone(inputs, client):
    """A manifest `memory` is a Dask resource: a job no worker can hold is recorded, not left waiting forever."""

    from spatial.batch.engine import run

    jobs = [replace(inputs["jobs"][0], memory=2**50), replace(inputs["jobs"][1], memory=2**20)]
    got = {}
    run(jobs, lambda job: [{"place": job.place, "date": job.date, "status": "ok"}], lambda j, r: got.update({j.place: r}), client=client)  # fmt: skip
    assert "needs 1,125,899,906,842,624 bytes" in got[jobs[0].place][0]["error"]
    assert got[jobs[1].place][0]["status"] == "ok"  # fits: runs with its resource


def test_progress_bar_only_on_a_terminal():
    import io

    from app.cli.batch import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = Progress(2, stream)
        bar([{"status": "ok", "group": "g"}])
        bar([{"status": "failed", "group": None, "error": "x"}])
    assert "1/2 jobs, 0 failed" in tty.getvalue() and "2/2 jobs, 1 failed" in tty.getvalue()
    assert tty.getvalue().endswith("\n") and pipe.getvalue() == ""


def test_partitioned_national_folder(inputs, tmp_path):
    """A Hive-partitioned folder (place=…/date=…/part.parquet) splits like one file."""
    gdf = inputs["georgia"]
    root = tmp_path / "national"
    for band, part in gdf.groupby("band"):
        folder = root / f"place=Georgia band {band:02d}" / "date=1990"
        folder.mkdir(parents=True)
        part.drop(columns="band").to_parquet(folder / "part-0.parquet")
    jobs = split_national(root, tmp_path / "out", groups=["black"], total="total_population", key="area_key")
    assert [(j.place, j.date) for j in jobs] == [(f"Georgia band {b:02d}", "1990") for b in range(12)]
    piece = gpd.read_parquet(jobs[2].boundaries)
    assert len(piece) == (gdf["band"] == 2).sum() and piece.crs == gdf.crs
    rows = run_job(jobs[2], replace(OPTIONS, indices=("dissimilarity",), permutations=9))
    assert rows[0]["status"] == "ok" and rows[0]["n_areas"] > 0
