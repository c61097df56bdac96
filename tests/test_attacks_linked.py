"""Attacks across datasets of one date on nested geographies (spatial/disclosure_linked.py, app/linked.py).

The attacker reads every published table of a date (OGC items: the counts every other output is computed from),
knows which areas nest (the geometry is public) and solves the linear equations "area = sum of its pieces". A
withheld count is recoverable exactly when its vector lies in the row space of the published areas' vectors over
the finest pieces: the test's attacker checks that with numpy's rank, independently of the module's tree algebra.
Each test uploads its own year, so datasets of different tests are not linked.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely.affinity
from shapely.geometry import box

from conftest import in_process
from spatial.disclosure_forest import _cyclic, _Forest
from spatial.disclosure_linked import Layer, _relate, audit

KEY = "linked-attack-key"
N = 8  # finest grid: 8×8 cells of 1 km
HIDDEN = {18: 3, 27: 4, 45: 2}  # fine cells with a small group count (their totals are large)


def _fine_counts(seed: int, hidden: dict) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pop = rng.integers(300, 900, N * N)
    group = np.rint(pop * np.linspace(0.1, 0.5, N * N)).astype(int)
    for cell, value in hidden.items():
        group[cell] = value
    return pop, group


def _cells(size: int) -> list[tuple[int, int]]:
    k = N * 1000 // size
    return [(x, y) for y in range(k) for x in range(k)]


def _pieces(size: int) -> list[np.ndarray]:
    """The fine cells inside each area of a grid of ``size`` metres (the geometry the attacker reads)."""
    f = size // 1000
    return [np.array([(y * f + j) * N + x * f + i for j in range(f) for i in range(f)]) for x, y in _cells(size)]


def _layer_bytes(size: int, pop: np.ndarray, group: np.ndarray, shift: float = 0) -> bytes:
    """A grid of ``size`` metres whose counts are the sums of the fine counts inside (consistent tables)."""
    parts = _pieces(size)
    geoms = [box(x * size + shift, y * size, (x + 1) * size + shift, (y + 1) * size) for x, y in _cells(size)]
    gdf = gpd.GeoDataFrame(
        {"key": [f"s{size}-{i:02d}" for i in range(len(parts))]}
        | {"pop": [int(pop[p].sum()) for p in parts], "grp": [int(group[p].sum()) for p in parts]},
        geometry=geoms,
        crs=3035,
    )
    return gdf.to_crs(4326).to_json().encode()


def _upload(c, ident: str, date: str, body: bytes, **extra):
    form = {"groups": "grp", "total": "pop", "key": "key", "id": ident, "date": date} | extra
    return c.post("/v1/datasets", files={"boundaries": ("g.geojson", body)}, data=form, headers={"X-API-Key": KEY})


def _published(c, ident: str) -> dict[str, float | None]:
    items = c.get(f"/ogc/collections/{ident}/items?limit=1000").json()["features"]
    return {f["properties"]["id"]: f["properties"]["grp"] for f in items}


def _solvable(c, tables: dict[str, int]) -> list[str]:
    """Withheld areas (of any table) whose group count the published areas of all ``tables`` determine."""
    rows, hidden = [], []
    for ident, size in tables.items():
        shown = _published(c, ident)
        for i, part in enumerate(_pieces(size)):
            vec = np.zeros(N * N)
            vec[part] = 1
            (rows if shown[f"s{size}-{i:02d}"] is not None else hidden).append((f"{ident}:{i}", vec))
    published = np.array([v for _, v in rows])
    rank = np.linalg.matrix_rank(published)
    return [name for name, v in hidden if np.linalg.matrix_rank(np.vstack([published, v])) == rank]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with in_process(tmp_path_factory.mktemp("linked-attacks"), register_bundled=False, api_key=KEY) as c:
        yield c


def test_a_coarse_table_after_the_fine_one_withholds_the_areas_that_difference_out(client):
    pop, grp = _fine_counts(1, HIDDEN)
    assert _upload(client, "fine-2001", "2001", _layer_bytes(1000, pop, grp)).status_code == 201
    r = _upload(client, "coarse-2001", "2001", _layer_bytes(2000, pop, grp))
    assert r.status_code == 201, r.text
    coarse = _published(client, "coarse-2001")
    withheld = sorted(k for k, v in coarse.items() if v is None)
    assert withheld == ["s2000-05", "s2000-10"]  # around cells 18 and 27 (one area), and 45: the rest is published
    assert _solvable(client, {"fine-2001": 1000, "coarse-2001": 2000}) == []
    # the attack itself: the coarse area minus its visible pieces
    fine = _published(client, "fine-2001")
    assert fine["s1000-45"] is None and coarse["s2000-10"] is None
    rule = client.get("/v1/datasets/coarse-2001/indices?index=dissimilarity").json()["dissimilarity"]["disclosure"]
    assert rule["withheld_areas"] == 2 and rule["linked_withheld_areas"] == 2


def test_an_informal_overlay_keeps_the_areas_its_source_withholds_for_another_table(client):
    """The overlay is a new dataset on the same areas (plus an `informal` group): published as is, the coarse area
    withheld for the fine table would show again. It is audited with its source's date."""
    sett = gpd.GeoDataFrame({"people": [40]}, geometry=[box(100, 100, 300, 300)], crs=3035).to_crs(4326)
    r = client.post(
        "/v1/datasets/coarse-2001/informal",
        headers={"X-API-Key": KEY},
        files={"settlements": ("s.geojson", sett.to_json().encode())},
        data={"population": "people", "id": "coarse-2001-informal"},
    )
    assert r.status_code == 201, r.text
    derived = _published(client, "coarse-2001-informal")
    assert derived["s2000-05"] is None and derived["s2000-10"] is None
    assert _solvable(client, {"fine-2001": 1000, "coarse-2001-informal": 2000}) == []


def test_a_fine_table_after_the_coarse_one_withholds_a_sibling(client):
    pop, grp = _fine_counts(2, {45: 3})
    assert _upload(client, "coarse-2002", "2002", _layer_bytes(2000, pop, grp)).status_code == 201
    r = _upload(client, "fine-2002", "2002", _layer_bytes(1000, pop, grp))
    assert r.status_code == 201, r.text
    fine = _published(client, "fine-2002")
    withheld = sorted(k for k, v in fine.items() if v is None)
    assert len(withheld) == 2 and "s1000-45" in withheld  # the small cell and one complement in its coarse area
    (other,) = set(withheld) - {"s1000-45"}
    assert int(other.split("-")[1]) in (36, 37, 44)
    assert all(v is not None for v in _published(client, "coarse-2002").values())  # published: never changed
    assert _solvable(client, {"coarse-2002": 2000, "fine-2002": 1000}) == []


def test_chained_levels_and_a_city_total_recover_nothing(client):
    """fine → coarse (withholds around the small cell) → coarsest: the coarsest area around the withheld coarse
    one minus the other coarse areas would give it (and then the fine cell): it is withheld too. A city total is
    all one area: refused, and the refusal stores nothing."""
    pop, grp = _fine_counts(3, {45: 3})
    tables = {"fine-2003": 1000, "coarse-2003": 2000, "coarsest-2003": 4000}
    for ident, size in tables.items():
        r = _upload(client, ident, "2003", _layer_bytes(size, pop, grp))
        assert r.status_code == 201, (ident, r.text)
    assert _published(client, "coarse-2003")["s2000-10"] is None
    assert _published(client, "coarsest-2003")["s4000-03"] is None
    assert _solvable(client, tables) == []
    before = client.get("/v1/datasets").json()
    r = _upload(client, "city-2003", "2003", _layer_bytes(8000, pop, grp))
    assert r.status_code == 422 and r.json()["problems"][0]["code"] == "linked_disclosure", r.text
    assert "Every area of this upload" in r.text
    assert client.get("/v1/datasets").json() == before


def test_every_output_of_the_nested_table_is_the_same_whatever_the_hidden_count(client):
    """Two dates identical but for one small count (3 or 8): the coarse tables' outputs (items, indices with the
    city totals, local statistics, CSV) are byte-identical, so nothing published depends on it."""
    outputs = []
    for year, value in (("2008", 3), ("2009", 8)):
        pop, grp = _fine_counts(8, {45: value})
        assert _upload(client, f"fine-{year}", year, _layer_bytes(1000, pop, grp)).status_code == 201
        assert _upload(client, f"coarse-{year}", year, _layer_bytes(2000, pop, grp)).status_code == 201
        base = f"/v1/datasets/coarse-{year}"
        urls = [
            f"/ogc/collections/coarse-{year}/items?limit=100",
            f"{base}/indices?index=dissimilarity&index=gini&index=entropy",
            f"{base}/local?group=grp&statistic=lisa&permutations=99&seed=1",
            f"{base}/local?group=grp&statistic=lq&permutations=99&seed=1&format=csv",
        ]
        outputs.append([client.get(u).text.replace(year, "YEAR") for u in urls])
    assert outputs[0] == outputs[1]
    owner = [
        client.get(f"/ogc/collections/coarse-{y}/items", headers={"X-API-Key": KEY}).text for y in ("2008", "2009")
    ]
    assert owner[0].replace("2008", "YEAR") != owner[1].replace("2009", "YEAR")  # the comparison can fail


def test_partial_overlaps_next_to_withheld_areas_are_refused_but_other_dates_are_free(client):
    pop, grp = _fine_counts(4, {45: 3})
    assert _upload(client, "fine-2004", "2004", _layer_bytes(1000, pop, grp)).status_code == 201
    before = client.get("/v1/datasets").json()
    shifted = _layer_bytes(2000, pop, grp, shift=500)  # each area half over two columns of fine cells
    r = _upload(client, "shifted-2004", "2004-06-30", shifted)
    assert r.status_code == 422 and r.json()["problems"][0]["code"] == "linked_disclosure", r.text
    assert "partly overlap" in r.text and "cell_key" in r.text
    assert r.json()["problems"][0]["ids"] == [f"s2000-{i:02d}" for i in (8, 9, 10, 11)]  # the row holding cell 45
    assert client.get("/v1/datasets").json() == before
    r = _upload(client, "coarse-2005", "2005", _layer_bytes(2000, pop, grp))  # another year: not linked
    assert r.status_code == 201
    assert all(v is not None for v in _published(client, "coarse-2005").values())


def test_uploads_that_cannot_withhold_are_refused_when_they_would_reveal(client):
    pop, grp = _fine_counts(6, {45: 3})
    assert _upload(client, "fine-2006", "2006", _layer_bytes(1000, pop, grp)).status_code == 201
    for extra in ({"disclosure_method": "cell_key"}, {"disclosure_threshold": "0"}):
        r = _upload(client, "coarse-2006", "2006", _layer_bytes(2000, pop, grp), **extra)
        assert r.status_code == 422 and "disclosure_method=suppress" in r.text, (extra, r.text)
    assert client.get("/v1/datasets/coarse-2006").status_code == 404


def test_cell_key_tables_of_one_date_difference_only_to_noise(client):
    """Both tables perturbed (the ABS argument): every cell of each table has its own fixed noise, so a coarse
    area minus its three published pieces gives the fourth plus the sum of four independent noises, never a
    value the attacker can tell is exact. Over 16 areas with a true 3 the differences spread out."""
    rng = np.random.default_rng(7)
    pop = rng.integers(300, 900, N * N)
    grp = rng.integers(20, 200, N * N)
    small = [((y * 2) * N + x * 2) for y in range(4) for x in range(4)]  # one small cell in each coarse area
    grp[small] = 3
    for ident, size in (("ckfine-2007", 1000), ("ckcoarse-2007", 2000)):
        r = _upload(client, ident, "2007", _layer_bytes(size, pop, grp), disclosure_method="cell_key")
        assert r.status_code == 201, r.text
    fine, coarse = _published(client, "ckfine-2007"), _published(client, "ckcoarse-2007")
    guesses = []
    for i, part in enumerate(_pieces(2000)):
        target = next(p for p in part if p in small)
        guesses.append(coarse[f"s2000-{i:02d}"] - sum(fine[f"s1000-{p:02d}"] for p in part if p != target))
        assert fine[f"s1000-{target:02d}"] in (0, 10)  # the small cell itself is published as 0 or 10
    assert len(set(guesses)) >= 4 and sum(g == 3 for g in guesses) < len(guesses) / 2


# -- the algebra, without HTTP -------------------------------------------------------------------------------------
def _grid(n: int, size: float, keep=None) -> np.ndarray:
    cells = np.array([box(x * size, y * size, (x + 1) * size, (y + 1) * size) for y in range(n) for x in range(n)])
    return cells if keep is None else cells[keep]


def _rank_determined(f: _Forest, known: np.ndarray) -> np.ndarray:
    """Solvable by a rank test: atoms are the uncovered remainders; a node is the sum of those below it."""
    atoms = np.flatnonzero(~f.covered)
    col = {a: i for i, a in enumerate(atoms)}
    m = np.zeros((f.n, len(atoms)))
    for v in range(f.n):
        stack = [v]
        while stack:
            w = stack.pop()
            if not f.covered[w]:
                m[v, col[w]] = 1
            stack.extend(int(c) for c in f.children(w))
    rank = np.linalg.matrix_rank(m[known]) if known.any() else 0
    return np.array([known[v] or np.linalg.matrix_rank(np.vstack([m[known], m[v]])) == rank for v in range(f.n)])


def test_the_tree_algebra_agrees_with_a_rank_test():
    rng = np.random.default_rng(0)
    checked = determined = 0
    for _ in range(120):
        layers = []
        for k, (n, size) in enumerate(((8, 1000), (4, 2000), (2, 4000), (1, 8000))):
            if k and rng.random() < 0.3:
                continue
            geoms = _grid(n, size, rng.random(n * n) < 0.85)  # missing areas leave remainders without an equation
            layers.append(Layer(f"l{k}", geoms, rng.random(len(geoms)) < 0.35))
        if len(layers) < 2:
            continue
        f = _Forest(_relate(layers), layers)
        known = f.old_pub | f.new_pub
        ours = f.determined(known)
        assert (ours == _rank_determined(f, known)).all()
        checked += 1
        determined += int((ours & ~known).sum())
    assert checked > 80 and determined > 100  # the structures do hold solvable unknowns


def test_a_withheld_area_made_of_visible_pieces_protects_nothing():
    """Coarse area 3 is withheld but its fine pieces are all published: it is known. A naive rule ("the city holds
    two withheld areas") would publish the city total; it minus coarse 0, 1 and 3 gives coarse 2, and coarse 2
    minus its visible pieces the small fine cell 8."""
    fine = Layer("fine", _grid(4, 1000), np.zeros(16, bool))
    fine.hidden[8] = True
    coarse = Layer("coarse", _grid(2, 2000), np.array([False, False, True, True]))
    city = Layer("city", _grid(1, 4000), np.zeros(1, bool))
    result = audit(city, [fine, coarse])
    assert result.refused is None and result.withhold.tolist() == [True]
    # with a withheld piece in coarse 3 as well, coarse 2 and 3 hide each other and the city can be published
    fine.hidden[10] = True
    assert audit(city, [fine, coarse]).withhold.tolist() == [False]


def test_a_small_sum_of_withheld_pieces_is_withheld_too():
    """Two withheld pieces in one coarse area cannot be solved one by one, but their sum can: small, it is
    protected like a small area (the coarse area is withheld)."""
    hidden = np.zeros(16, bool)
    hidden[[0, 1]] = True
    counts = np.column_stack([np.full(16, 500.0), np.full(16, 100.0)])
    counts[[0, 1], 1] = [3, 4]
    fine = Layer("fine", _grid(4, 1000), hidden, counts=counts, threshold=10, columns=("__total__", "grp"))
    coarse_counts = np.array([[2000.0, 207], [2000, 400], [2000, 400], [2000, 400]])
    coarse = Layer("coarse", _grid(2, 2000), np.zeros(4, bool), coarse_counts, 10, ("__total__", "grp"))
    assert audit(coarse, [fine]).withhold.tolist() == [True, False, False, False]
    counts[[0, 1], 1] = [3, 9]  # a sum of 12: not small, the pair hides each other
    assert audit(coarse, [fine]).withhold.tolist() == [False] * 4


def test_the_same_areas_uploaded_again_keep_their_withheld_areas_withheld():
    """Another table of the same people on the same areas (other groups, say): an area withheld in one is withheld
    in the other, whatever its own counts; the areas are matched by shape (shifted by 0.1%: still the same)."""
    old = Layer("first", _grid(4, 1000), np.zeros(16, bool))
    old.hidden[[5, 9]] = True
    again = Layer("again", _grid(4, 1000), np.zeros(16, bool))
    again.geometry = np.array([shapely.affinity.translate(g, xoff=1.0) for g in again.geometry])
    assert np.flatnonzero(audit(again, [old]).withhold).tolist() == [5, 9]


def test_nested_areas_within_one_upload_do_not_difference_out(client):
    """A grid and its coarse cells in one file: coarse minus the visible fine cells would give the withheld one.

    One table cannot be audited against itself, so the upload is refused (spatial/overlaps.py), naming pairs."""
    pop, grp = _fine_counts(10, {45: 3})
    fine, coarse = (gpd.read_file(_layer_bytes(s, pop, grp).decode()) for s in (1000, 2000))
    both = gpd.GeoDataFrame(pd.concat([fine, coarse], ignore_index=True), crs=4326)
    before = client.get("/v1/datasets").json()["datasets"]
    r = _upload(client, "both-2010", "2010", both.to_json().encode())
    assert r.status_code == 422, r.text
    (refusal,) = [p for p in r.json()["problems"] if p["code"] == "overlapping_areas"]
    assert refusal["n_pairs"] == 64  # each fine cell inside its coarse cell, nothing else
    shares = {tuple(p["ids"]): p["share"] for p in refusal["pairs"]}
    assert shares[("s1000-45", "s2000-10")] == pytest.approx(1, abs=1e-3)  # the withheld cell in its coarse cell
    assert client.get("/v1/datasets").json()["datasets"] == before


def test_a_chain_of_near_equal_areas_across_datasets_does_not_hang_the_audit():
    """Widths 100, 100.9, 101.8: each within 1 % of the next (the same area), the ends not (nested). Merged into one
    node, the nesting pointed the node at itself and the audit looped for ever in the upload's worker thread."""
    import threading

    def one(name, width, hidden=False):
        counts = np.array([[500.0, 50.0]])
        return Layer(name, np.array([box(0, 0, width, 100)]), np.array([hidden]), counts, 10, ("__total__", "grp"))

    done = []
    worker = threading.Thread(
        target=lambda: done.append(audit(one("new", 101.8), [one("a", 100.0), one("b", 100.9)])), daemon=True
    )
    worker.start()
    worker.join(timeout=20)
    assert done and done[0].refused is None and done[0].linked == ["a", "b"]


def test_containment_that_goes_round_is_found():
    """Merged nodes can make containment cyclic; the audit then refuses instead of walking the cycle."""
    assert not _cyclic(np.array([-1, 0, 0, 1, -1]))  # a forest
    assert _cyclic(np.array([1, 2, 0, -1]))  # 0 -> 1 -> 2 -> 0
    assert _cyclic(np.array([-1, 2, 3, 1] + [-1] * 60))  # a cycle far from the first node, among many
