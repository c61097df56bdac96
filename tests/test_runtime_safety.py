"""Runtime safety of the service: heavy work that stops when nobody waits for it, a real queue bound,
light requests that stay fast during a burst, cache headers that keep owners' raw counts private,
413s for chunked bodies, security headers on every answer, orphaned temporary files swept promptly."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import statistics
import subprocess
import threading
import time
import uuid

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from spatial.cancel import Cancelled, CancelToken, checkpoint, running

KEY = "owner-key"
ORIGIN = "https://city.example"


# -- cooperative cancellation ------------------------------------------------------------------------------


def test_checkpoint_does_nothing_outside_a_job():
    checkpoint()  # the command line and tests run without a token


def test_a_cancelled_job_stops_at_its_next_checkpoint():
    token, steps, outcome = CancelToken(), [], {}
    started = threading.Event()

    def job():
        try:
            with running(token):
                for i in range(10_000):
                    steps.append(i)
                    started.set()
                    time.sleep(0.01)
                    checkpoint()
        except Cancelled as exc:
            outcome["cancelled"] = str(exc)

    thread = threading.Thread(target=job)
    thread.start()
    started.wait(5)
    time.sleep(0.1)
    token.cancel("test")
    at_cancel = len(steps)
    thread.join(5)
    assert not thread.is_alive() and outcome == {"cancelled": "test"}
    assert len(steps) - at_cancel <= 1  # at most the step under way when cancelled


def test_a_passed_deadline_cancels_and_a_queued_job_never_starts():
    with pytest.raises(Cancelled):
        with running(CancelToken(deadline=time.monotonic() - 1)):
            pytest.fail("the body of an expired job must not run")


class _CancelAfter(CancelToken):
    """Reports itself cancelled from the ``n``-th check on: proves the code under test checks at all."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.checks = n, 0

    @property
    def cancelled(self) -> bool:
        self.checks += 1
        return self.checks >= self.n


@pytest.fixture(scope="module")
def georgia():
    from conftest import BUNDLED
    from spatial.dataset import Metadata
    from spatial.io import load_dataset

    return load_dataset(
        BUNDLED / "boundaries" / "georgia_counties.gpkg",
        counts=BUNDLED / "census" / "georgia_counties_1990.csv",
        key="area_key",
        total="total_population",
        groups=["foreign_born", "native_born", "black", "not_black"],
        meta=Metadata(name="georgia"),
    )


@pytest.mark.parametrize("work", ["indices", "lisa", "gi_star", "weights"])
def test_spatial_computations_check_for_cancellation(georgia, work):
    from spatial.indices.compute import compute_indices
    from spatial.local import local_statistic
    from spatial.weights import build_weights

    run = {
        "indices": lambda: compute_indices(georgia, group="black", indices=["dissimilarity"], permutations=999, seed=1),
        "lisa": lambda: local_statistic(georgia, "black", "lisa", permutations=999, seed=1),
        "gi_star": lambda: local_statistic(georgia, "black", "gi_star", permutations=999, seed=1),
        "weights": lambda: build_weights(georgia, "knn", k=5),
    }[work]
    token = _CancelAfter(2)  # the entry check passes; the first checkpoint inside the computation raises
    with pytest.raises(Cancelled):
        with running(token):
            run()
    assert token.checks == 2


def test_a_long_simulation_stops_soon_after_cancel(georgia):
    """Four spatial indices with 99,999 simulations take ~30 s on Georgia; cancelled at 0.3 s they stop within a block."""
    from spatial.indices.compute import compute_indices

    indices = ["spatial_proximity", "relative_clustering", "spatial_dissimilarity", "distance_decay_isolation"]
    compute_indices(georgia, group="black", indices=indices)  # imports (libpysal: seconds) are not the test
    token = CancelToken()
    timer = threading.Timer(0.3, token.cancel)
    t0 = time.monotonic()
    timer.start()
    with pytest.raises(Cancelled):
        with running(token):
            compute_indices(georgia, group="black", indices=indices, permutations=99_999, seed=1)
    assert time.monotonic() - t0 < 2.0


# -- HeavyWork ------------------------------------------------------------------------------------------------


def _spin(state: dict, seconds: float = 30.0):
    """A job that would run ``seconds`` unless cancelled; records that it started and how it ended."""
    state["started"] = state.get("started", 0) + 1
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            time.sleep(0.005)
            checkpoint()
        state["finished"] = True
        return "done"
    except Cancelled:
        state["cancelled"] = state.get("cancelled", 0) + 1
        raise


async def _settled(heavy, timeout: float = 3.0) -> float:
    t0 = time.monotonic()
    while heavy.pending and time.monotonic() - t0 < timeout:
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


def test_a_timed_out_job_answers_503_and_stops():
    from app.http import HeavyWork
    from app.problems import ProblemError

    async def main():
        heavy = HeavyWork(1, timeout=0.3)
        state: dict = {}
        t0 = time.monotonic()
        with pytest.raises(ProblemError) as err:
            await heavy.run(_spin, state)
        assert err.value.status == 503 and err.value.code == "timeout" and "Retry-After" in err.value.headers
        assert 0.25 < time.monotonic() - t0 < 2.0
        assert await _settled(heavy) < 1.5  # the worker thread is free again, not running on for 30 s
        assert state == {"started": 1, "cancelled": 1}
        heavy.close()

    asyncio.run(main())


def test_the_queue_bound_answers_busy_and_abandoned_queued_jobs_never_start():
    from app.http import HeavyWork

    async def main():
        heavy = HeavyWork(1, timeout=10, queue=2)  # 1 running + 2 queued
        states = [{} for _ in range(5)]
        tasks = [asyncio.ensure_future(heavy.run(_spin, s, 0.5)) for s in states]
        await asyncio.sleep(0.1)
        assert [t.done() for t in tasks] == [False, False, False, True, True]  # the last two refused at once
        for t in tasks[3:]:
            assert t.exception().code == "busy" and t.exception().headers["Retry-After"]
        tasks[1].cancel()  # their clients leave while they are queued
        tasks[2].cancel()
        assert await tasks[0] == "done"
        assert await _settled(heavy) < 1.5
        assert states[1] == states[2] == {}  # dropped before they ran
        heavy.close()

    asyncio.run(main())


def test_a_shared_job_runs_while_a_waiter_remains_and_stops_when_none_does():
    from app.http import HeavyWork

    async def main():
        heavy = HeavyWork(1, timeout=10)
        state: dict = {}
        first = asyncio.ensure_future(heavy.run(_spin, state, 0.6, key="k"))
        second = asyncio.ensure_future(heavy.run(_spin, state, 0.6, key="k"))
        await asyncio.sleep(0.2)
        first.cancel()  # one client gone: the other still waits
        assert await second == "done" and state == {"started": 1, "finished": True}

        state2: dict = {}
        waiters = [asyncio.ensure_future(heavy.run(_spin, state2, 30, key="j")) for _ in range(3)]
        await asyncio.sleep(0.2)
        for w in waiters:
            w.cancel()
        assert await _settled(heavy) < 1.5 and state2 == {"started": 1, "cancelled": 1}
        heavy.close()

    asyncio.run(main())


def test_a_client_that_hangs_up_cancels_its_job():
    from app.http import CLIENT_RECEIVE, HeavyWork
    from app.problems import ProblemError

    async def main():
        heavy = HeavyWork(1, timeout=30)
        state: dict = {}
        gone = asyncio.Event()

        async def receive():
            await gone.wait()
            return {"type": "http.disconnect"}

        CLIENT_RECEIVE.set(receive)
        task = asyncio.ensure_future(heavy.run(_spin, state))
        await asyncio.sleep(0.2)
        gone.set()
        with pytest.raises(ProblemError) as err:
            await task
        assert err.value.code == "cancelled"
        assert await _settled(heavy) < 1.5 and state == {"started": 1, "cancelled": 1}
        heavy.close()

    asyncio.run(main())


# -- headers, in process ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from conftest import georgia_bundle

    bundled = georgia_bundle(tmp_path_factory.mktemp("bundled"))  # Georgia only: all the samples cost ~12 s
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("runtime"), api_key=KEY, cors_origins=[ORIGIN], bundled_dir=bundled
    )
    app = create_app(settings)

    @app.get("/boom", include_in_schema=False)
    async def boom():
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _vary(r) -> list[str]:
    return [t.strip().lower() for t in r.headers.get("vary", "").split(",") if t.strip()]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/datasets/georgia-1990/local?permutations=9&group=black",
        "/v1/datasets/georgia-1990/tiles/0/0/0.mvt",
        "/maps/georgia-1990?permutations=9&view=share",
    ],
)
def test_owner_responses_are_private_and_every_cacheable_answer_varies_on_the_key(client, path):
    public = client.get(path)
    again = client.get(path)  # tiles: now from the in-memory tile cache
    owner = client.get(path, headers={"X-API-Key": KEY})
    for r in (public, again, owner):
        assert r.status_code == 200, r.text
        assert "x-api-key" in _vary(r), r.headers
    assert "public" in public.headers["cache-control"] and "public" in again.headers["cache-control"]
    assert "private" in owner.headers["cache-control"] and "public" not in owner.headers["cache-control"]


def test_cached_tiles_keep_owner_and_public_apart_and_name_origin_once(client, tmp_path):
    import mapbox_vector_tile
    from test_service import square_geojson

    # Two small areas: counts under the threshold are hidden from the public, shown to the owner.
    data = square_geojson(n=4, pop=[100, 100, 100, 100], mig=[3, 40, 50, 4])
    r = client.post(
        "/v1/datasets",
        headers={"X-API-Key": KEY},
        data={"groups": "mig", "total": "pop", "key": "code", "id": "tile-privacy"},
        files={"boundaries": ("x.geojson", data, "application/json")},
    )
    assert r.status_code == 201, r.text
    url = "/v1/datasets/tile-privacy/tiles/0/0/0.mvt"

    def counts(r):
        feats = mapbox_vector_tile.decode(r.content)["areas"]["features"]
        return sorted(str(f["properties"].get("mig")) for f in feats)

    h = {"Origin": ORIGIN}
    public = [client.get(url, headers=h) for _ in range(2)]
    owner = [client.get(url, headers={**h, "X-API-Key": KEY}) for _ in range(2)]
    public.append(client.get(url, headers=h))
    assert {tuple(counts(r)) for r in public} == {tuple(counts(public[0]))}
    assert {tuple(counts(r)) for r in owner} == {tuple(counts(owner[0]))}
    assert "3" in str(counts(owner[0])) and counts(public[0]) != counts(owner[0])
    for r in public + owner:
        assert _vary(r).count("origin") == 1, r.headers  # a cached tile got CORS's Vary: Origin twice
    for r in public + owner:
        assert _vary(r).count("x-api-key") == 1, r.headers
    etag = public[0].headers["etag"]
    not_modified = client.get(url, headers={**h, "If-None-Match": etag})
    assert not_modified.status_code == 304 and "x-api-key" in _vary(not_modified)


def test_a_server_error_is_a_problem_with_security_headers(client):
    r = client.get("/boom")
    assert r.status_code == 500 and r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["x-content-type-options"] == "nosniff" and "referrer-policy" in r.headers
    assert "a bug" not in r.text  # no internals in the answer


def test_method_not_allowed_lists_every_method_of_the_path(client):
    r = client.request("PUT", "/v1/datasets")
    assert r.status_code == 405 and set(r.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    r = client.request("PATCH", "/v1/datasets/georgia-1990")
    assert r.status_code == 405 and set(r.headers["allow"].replace(" ", "").split(",")) >= {"GET", "DELETE"}


# -- temporary files ----------------------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_crashed_writers_temporary_file_is_swept_at_once_a_live_ones_is_kept(tmp_path):
    from app.registry import Registry

    reg = Registry(tmp_path)
    orphan = reg.files / f".x.{_dead_pid()}.{uuid.uuid4().hex}.tmp"
    live = reg.files / f".x.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    for f in (orphan, live):
        f.write_bytes(b"partial parquet")
    removed = reg.sweep()
    assert orphan.name in removed and not orphan.exists()
    assert live.exists()


def test_the_running_service_sweeps_orphans_without_a_restart(tmp_path, monkeypatch):
    import app.main

    monkeypatch.setattr(app.main, "SWEEP_EVERY_S", 0.1)
    with TestClient(create_app(Settings(data_dir=tmp_path, register_bundled=False))):
        orphan = tmp_path / "datasets" / f".x.{_dead_pid()}.{uuid.uuid4().hex}.tmp"
        orphan.write_bytes(b"partial parquet")
        deadline = time.monotonic() + 5
        while orphan.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not orphan.exists()


# -- a real server --------------------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _seconds_until_idle(pid: int, limit: float, window: float = 0.5, idle: float = 0.15) -> float:
    """Seconds until the process uses under ``idle`` of a core over ``window``; ``limit`` if it never does."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        c0, w0 = _cpu_seconds(pid), time.monotonic()
        time.sleep(window)
        if (_cpu_seconds(pid) - c0) / (time.monotonic() - w0) < idle:
            return time.monotonic() - t0
    return limit


# Kernel weights take the per-area path of the conditional permutation: ~10 s of CPU per request on a 40×40 grid.
HEAVY = "/v1/datasets/grid/local?weights=kernel&k=16&permutations=9999&seed={}"


def _upload_grid(url: str, side: int = 40) -> None:
    feats = []
    for i in range(side):
        for j in range(side):
            x, y = i * 0.01, j * 0.01
            pop = 500 + (i * 37 + j * 91) % 1500
            feats.append(
                {
                    "type": "Feature",
                    "properties": {"code": f"c{i}_{j}", "pop": pop, "mig": (i * j * 7) % (pop // 2)},
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": [[[x, y], [x + 0.01, y], [x + 0.01, y + 0.01], [x, y + 0.01], [x, y]]],
                    },
                }
            )
    body = json.dumps({"type": "FeatureCollection", "features": feats}).encode()
    r = httpx.post(
        url + "/v1/datasets",
        headers={"X-API-Key": KEY},
        timeout=120,
        data={"groups": "mig", "total": "pop", "key": "code", "id": "grid"},
        files={"boundaries": ("grid.geojson", body, "application/json")},
    )
    assert r.status_code == 201, r.text


@pytest.mark.server
def test_a_burst_of_heavy_requests_is_bounded_stops_at_its_timeout_and_light_requests_stay_fast():
    from server import LiveServer

    burst = 30
    srv = LiveServer(
        env={"SEGMAP_COMPUTE_TIMEOUT_S": "2", "SEGMAP_API_KEY": KEY}, georgia_only=True
    )  # one worker: serves in srv.proc
    with srv as url:
        _upload_grid(url)
        latencies: dict[str, list[float]] = {"/health": [], "/v1/datasets": []}
        statuses: set[int] = set()
        stop = threading.Event()

        def poll():  # light requests, every 50 ms while the burst is under way
            with httpx.Client(base_url=url, timeout=30) as c:
                while not stop.is_set():
                    for path in latencies:
                        t = time.monotonic()
                        statuses.add(c.get(path).status_code)
                        latencies[path].append(time.monotonic() - t)
                    time.sleep(0.05)

        poller = threading.Thread(target=poll)
        poller.start()

        def heavy(i):
            r = httpx.get(url + HEAVY.format(i), timeout=60)
            return r.status_code, r.json().get("type", "").rsplit("/", 1)[-1], r.headers.get("retry-after")

        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(burst) as pool:
            answers = list(pool.map(heavy, range(burst)))
        answered = time.monotonic() - t0
        stop.set()
        poller.join()
        idle_after = _seconds_until_idle(srv.proc.pid, limit=10)
    codes = [code for _, code, _ in answers]
    report = {
        p: {"n": len(v), "median_ms": round(1000 * statistics.median(v)), "max_ms": round(1000 * max(v))}
        for p, v in latencies.items()
    }
    print(
        f"\nburst of {burst}: {codes.count('busy')} busy, {codes.count('timeout')} timed out, all answered in "
        f"{answered:.2f} s, server idle {idle_after:.2f} s later; light requests during the burst: {report}"
    )
    assert idle_after < 3, f"the server was still computing {idle_after:.1f} s after the last 503"
    assert all(status == 503 and retry for status, _, retry in answers), answers
    # At most 2 running + 4 queued per running one at a time: the rest of the burst is refused at once.
    assert codes.count("busy") >= 5, codes
    assert set(codes) <= {"busy", "timeout"}
    assert statuses == {200}
    for path, values in latencies.items():
        assert statistics.median(values) < 0.25 and max(values) < 2.0, (path, report)


@pytest.mark.server
def test_a_client_that_hangs_up_stops_its_computation():
    from server import LiveServer

    srv = LiveServer(env={"SEGMAP_COMPUTE_TIMEOUT_S": "60", "SEGMAP_API_KEY": KEY}, georgia_only=True)
    with srv as url:
        _upload_grid(url)
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(url + HEAVY.format(1), timeout=1.0)  # gives up after 1 s of a ~10 s computation
        idle_after = _seconds_until_idle(srv.proc.pid, limit=8)
        print(f"\nidle {idle_after:.2f} s after the client hung up")
        assert idle_after < 3


@pytest.fixture(scope="module")
def live():
    from server import LiveServer

    with LiveServer(env={"SEGMAP_API_KEY": KEY, "SEGMAP_MAX_UPLOAD_MB": "1"}, georgia_only=True) as url:
        yield url


@pytest.mark.server
def test_a_chunked_body_over_the_limit_gets_413_with_a_hint_and_security_headers(live):
    def chunks():
        for _ in range(40):
            yield b"x" * 65536  # 2.5 MB, no Content-Length

    body_boundary = uuid.uuid4().hex

    def multipart():
        yield (
            f"--{body_boundary}\r\nContent-Disposition: form-data; name=\"boundaries\"; filename=\"a.geojson\"\r\n"
            "Content-Type: application/json\r\n\r\n"
        ).encode()
        yield from chunks()
        yield f"\r\n--{body_boundary}--\r\n".encode()

    r = httpx.post(
        live + "/v1/datasets",
        content=multipart(),
        timeout=30,
        headers={"X-API-Key": KEY, "Content-Type": f"multipart/form-data; boundary={body_boundary}"},
    )
    assert r.status_code == 413, r.text
    assert (
        r.headers["content-type"].startswith("application/problem+json")
        and "SEGMAP_MAX_UPLOAD_MB" in r.json()["detail"]
    )
    assert r.headers["x-content-type-options"] == "nosniff"
    with_length = httpx.post(
        live + "/v1/datasets",
        content=b"x" * (2 * 2**20),
        timeout=30,
        headers={"X-API-Key": KEY, "Content-Type": "application/octet-stream"},
    )
    assert with_length.status_code == 413 and with_length.headers["x-content-type-options"] == "nosniff"


@pytest.mark.server
def test_control_characters_in_area_names_do_not_break_the_map_image_header(live):
    from test_service import square_geojson

    data = json.loads(square_geojson(n=3, pop=[100, 100, 100], mig=[60, 30, 20]))
    data["features"][0]["properties"]["name"] = "Evil\r\nX-Injected: 1\r\n\r\nbody"
    for i, f in enumerate(data["features"][1:], 1):
        f["properties"]["name"] = f"Area {i}"
    r = httpx.post(
        live + "/v1/datasets",
        headers={"X-API-Key": KEY},
        timeout=60,
        data={"groups": "mig", "total": "pop", "key": "code", "name_col": "name", "id": "crlf"},
        files={"boundaries": ("x.geojson", json.dumps(data).encode(), "application/json")},
    )
    assert r.status_code == 201, r.text
    r = httpx.get(live + "/v1/datasets/crlf/map.png", params={"width": 300, "height": 200}, timeout=60)
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG")
    assert "x-injected" not in r.headers and "Evil" in r.headers["x-alt-text"]
    assert not any(c in r.headers["x-alt-text"] for c in "\r\n")
