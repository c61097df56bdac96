"""The dataset registry: a SQLite catalogue plus one GeoParquet file per dataset version.

Writes are atomic: the new file is written under a temporary name, fsynced and renamed, and only
then does one transaction point the catalogue at it. A crash at any moment leaves the old state
or the new one; files no row points to are swept at start-up. SQLite (WAL, busy timeout) makes
this safe across threads and worker processes sharing the data directory.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import geopandas as gpd
from pyproj import Transformer
from pyproj.exceptions import ProjError

from spatial.dataset import AreaDataset, Metadata
from spatial.disclosure import PublicData, protect
from spatial.errors import ValidationError, problem
from spatial.io.store import wkb_of, write_geoparquet
from spatial.lru import LRU

from . import overlap_guard
from .geoparquet_read import read_geoparquet
from .series_fields import ID_PATTERN, _date_taken, check_series_fields, geography_fingerprint, series_date_taken

SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
  id TEXT PRIMARY KEY, version TEXT NOT NULL, file TEXT NOT NULL, title TEXT, source TEXT, year INTEGER,
  crs TEXT, n_areas INTEGER, total TEXT, groups TEXT, name_col TEXT, region_col TEXT, bounds TEXT,
  licence TEXT, description TEXT, derived_from TEXT, owner_key TEXT, created REAL, disclosure TEXT);
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT);
"""
# Columns added after the first release: (name, type), added to older catalogues at start (see _migrate).
ADDED_COLUMNS = (("series", "TEXT"), ("date", "TEXT"), ("geography", "TEXT"))
COLUMNS = (
    "id version file title source year crs n_areas total groups name_col region_col bounds licence description "
    "derived_from owner_key created disclosure"
).split() + [c for c, _ in ADDED_COLUMNS]


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48]
    return slug or "dataset"


def _writer_alive(tmp_name: str) -> bool:
    """Whether the process named in a temporary file's name (``.{id}.{pid}.{hex}.tmp``) still runs."""
    parts = tmp_name.split(".")
    if len(parts) != 5 or not parts[2].isdigit():
        return False  # no writer named (an older version's file): an orphan
    try:
        os.kill(int(parts[2]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Registry:
    def __init__(self, data_dir: Path, memory_entries: int = 16, *, sweep: bool = True):
        self.root = Path(data_dir)
        self.files = self.root / "datasets"
        self.files.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "catalog.sqlite"
        self._local = threading.local()
        # Datasets read from their files and their protected tables, by version (and threshold, method).
        self._memory = LRU(memory_entries)
        self._db().conn.executescript(SCHEMA)
        self._migrate()
        if sweep:
            self.sweep()

    # -- storage ------------------------------------------------------------------------------------
    def _migrate(self) -> None:
        """Add the columns a catalogue made by an older version lacks (in one transaction: workers race here)."""
        with self._db() as db:
            have = {r["name"] for r in db.execute("PRAGMA table_info(datasets)")}
            for name, kind in ADDED_COLUMNS:
                if name not in have:
                    db.execute(f"ALTER TABLE datasets ADD COLUMN {name} {kind}")

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return _Tx(conn)

    def sweep(self) -> list[str]:
        """Remove temporary files and dataset files no catalogue row points to (left by a crash).

        Run at start and periodically (app.main). A temporary file names the process writing it: it is an
        orphan as soon as that process is gone (an hour's age guards against a reused process id)."""
        with self._db() as db:
            live = {r["file"] for r in db.execute("SELECT file FROM datasets")}
        removed = []
        now = time.time()
        for f in self.files.iterdir():
            try:
                if f.name in live:
                    continue
                age = now - f.stat().st_mtime
                if f.name.endswith(".tmp"):
                    if _writer_alive(f.name) and age < 3600:
                        continue
                elif age < 60:
                    continue  # written a moment ago: its catalogue row may be about to land
                f.unlink(missing_ok=True)
            except FileNotFoundError:  # another worker swept or renamed it meanwhile
                continue
            removed.append(f.name)
        return removed

    # -- reads ----------------------------------------------------------------------------------------
    def list(self) -> list[dict]:
        with self._db() as db:
            return [self._row(r) for r in db.execute("SELECT * FROM datasets ORDER BY id")]

    def series(self, series_id: str | None = None) -> list[dict]:
        """The datasets of one series (or of every series) by series, then date."""
        where, args = ("WHERE series = ?", (series_id,)) if series_id else ("WHERE series IS NOT NULL", ())
        with self._db() as db:
            rows = db.execute(f"SELECT * FROM datasets {where} ORDER BY series, date, id", args)
            return [self._row(r) for r in rows]

    def date_taken(self, series_id: str, date: str, dataset_id: str | None = None) -> str | None:
        """The id of another dataset of ``series_id`` dated ``date``, if any."""
        with self._db() as db:
            return _date_taken(db, series_id, date, dataset_id)

    def info(self, dataset_id: str) -> dict | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
        return self._row(row) if row else None

    def load(self, dataset_id: str) -> AreaDataset | None:
        snap = self.snapshot(dataset_id)
        return None if snap is None else snap[1]

    def snapshot(self, dataset_id: str, info: dict | None = None) -> tuple[dict, AreaDataset] | None:
        """The catalogue row and the dataset of one version, read together: a concurrent replace or
        delete yields the old version, the new one or None, never a row without its data. ``info``: the
        row, when this request has read it already."""
        for _ in range(3):
            info = info or self.info(dataset_id)
            if info is None:
                return None
            try:
                return info, self._dataset(dataset_id, info)
            except FileNotFoundError:  # replaced or deleted between the two reads: read the row again
                info = None
        return None

    def public(self, dataset_id: str, info: dict, ds: AreaDataset, threshold: int, method: str) -> PublicData:
        """The protected table of one dataset version for one threshold, built once and kept beside it."""
        if threshold <= 1:
            return protect(ds, 0)
        withhold = tuple((info.get("disclosure") or {}).get("withhold") or ())  # linked: app/linked.py
        return self._memory.get_or_make(
            (dataset_id, info["version"], threshold, method, withhold),
            lambda: protect(
                ds,
                threshold,
                method,
                secret=self.secret(dataset_id) if method == "cell_key" else None,
                withhold=withhold,
            ),
        )

    def secret(self, dataset_id: str) -> bytes:
        """The dataset's cell-key secret: made once, kept across versions so a cell keeps its perturbation."""
        return bytes.fromhex(self.set_once(f"secret:{dataset_id}", os.urandom(32).hex()))

    def setting(self, name: str) -> str | None:
        """A value kept in the catalogue for every worker, or None."""
        row = self._db().conn.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def set_once(self, name: str, value: str) -> str:
        """Keep ``value`` under ``name`` unless one is kept already; the kept one (the first writer's wins, so every
        worker reads the same)."""
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO settings VALUES (?, ?)", (name, value))
            (kept,) = db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return kept

    def _dataset(self, dataset_id: str, info: dict) -> AreaDataset:
        return self._memory.get_or_make((dataset_id, info["version"]), lambda: self._read(dataset_id, info))

    def _read(self, dataset_id: str, info: dict) -> AreaDataset:
        areas = read_geoparquet(self.files / info["_file"])  # in chunks: the worker keeps answering meanwhile
        meta = Metadata(
            name=info["title"] or dataset_id,
            source=info["source"],
            year=info["year"],
            crs=info["crs"],
            licence=info["licence"],
            description=info["description"],
        )
        return AreaDataset(
            areas=areas,
            total=info["total"],
            groups=tuple(info["groups"]),
            meta=meta,
            name_col=info["name_col"],
            region_col=info["region_col"],
        )

    @staticmethod
    def _row(r: sqlite3.Row) -> dict:
        d = dict(r)
        d["groups"] = json.loads(d["groups"])
        bounds = json.loads(d["bounds"]) if d["bounds"] else None
        # A row stored with infinite or NaN bounds must not break every listing (JSON cannot carry them).
        d["bounds"] = bounds if bounds and all(math.isfinite(v) for v in bounds) else None
        d["disclosure"] = json.loads(d["disclosure"]) if d.get("disclosure") else None
        d["_file"] = d.pop("file")
        return d

    # -- writes ---------------------------------------------------------------------------------------
    def new_id(self, title: str) -> str:
        base = slugify(title)
        with self._db() as db:
            taken = {r[0] for r in db.execute("SELECT id FROM datasets WHERE id = ? OR id LIKE ?", (base, base + "-%"))}
        if base not in taken:
            return base
        i = 2
        while f"{base}-{i}" in taken:
            i += 1
        return f"{base}-{i}"

    def put(
        self,
        dataset_id: str,
        ds: AreaDataset,
        *,
        replace: bool = False,
        derived_from: str | None = None,
        owner_key: str | None = None,
        disclosure: dict | None = None,
        series: str | None = None,
        date: str | None = None,
    ) -> dict:
        """Store ``ds`` under ``dataset_id`` atomically; fails if it exists unless ``replace``, or if another
        dataset of ``series`` has the same ``date`` (checked in the transaction that writes the row)."""
        if not ID_PATTERN.match(dataset_id):
            raise ValidationError(
                problem("bad_id", f"Dataset id {dataset_id!r} must be 1–63 lower-case letters, digits, '-' or '_'")
            )
        series, date = check_series_fields(series, date, ds.meta.year)
        overlap_guard.before_put(ds)  # every stored dataset: free when validate checked these shapes
        wkb, has_z = wkb_of(ds.areas)  # encoded once: for the file and the geography fingerprint
        digest, final_name = self._write_file(dataset_id, ds.areas, wkb)
        extra = (derived_from, owner_key, time.time(), json.dumps(disclosure) if disclosure else None, series, date)
        row = _catalogue_row(dataset_id, digest, final_name, ds, extra, None if has_z else wkb)
        old = self._point_at(dataset_id, row, final_name, replace, series, date)
        if old and old["file"] != final_name:
            (self.files / old["file"]).unlink(missing_ok=True)
        overlap_guard.passed(self, dataset_id, digest)
        return self.info(dataset_id)

    def _write_file(self, dataset_id: str, areas: gpd.GeoDataFrame, wkb) -> tuple[str, str]:
        """Write ``areas`` (geometry as ``wkb``) under its final name (version digest) atomically: (digest, name)."""
        tmp = self.files / f".{dataset_id}.{os.getpid()}.{uuid.uuid4().hex}.tmp"  # the pid: see sweep()
        try:
            write_geoparquet(areas, wkb, tmp)
            with open(tmp, "rb") as fh:
                # keyed: the version is public (tile URLs, ETags), and a plain hash of the true table would let
                # an attacker check a guess of the withheld counts offline
                digest = hmac.new(self.secret(dataset_id), fh.read(), hashlib.sha256).hexdigest()[:16]
                os.fsync(fh.fileno())
            final_name = f"{dataset_id}.{digest}.parquet"
            os.replace(tmp, self.files / final_name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.files)
        return digest, final_name

    def _point_at(self, dataset_id: str, row: tuple, final_name: str, replace: bool, series, date):
        """One transaction: refuse an existing id (unless ``replace``) or a taken series date, else write the row.

        Returns the previous row (its file is for the caller to remove); on refusal the new file is removed."""
        with self._db() as db:
            old = db.execute("SELECT file FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
            taken = _date_taken(db, series, date, dataset_id) if series else None
            if (old and not replace) or taken:
                (self.files / final_name).unlink(missing_ok=True) if not old or old["file"] != final_name else None
                if taken:
                    raise ValidationError(series_date_taken(series, date, taken), code="exists")
                raise ValidationError(
                    problem("exists", f"Dataset {dataset_id!r} exists; choose another id or delete it first"),
                    code="exists",
                )
            db.execute(
                f"INSERT OR REPLACE INTO datasets ({','.join(COLUMNS)}) VALUES ({','.join('?' * len(row))})", row
            )
        return old

    def delete(self, dataset_id: str) -> bool:
        with self._db() as db:
            old = db.execute("SELECT file FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
            if not old:
                return False
            db.execute("DELETE FROM datasets WHERE id = ?", (dataset_id,))
        (self.files / old["file"]).unlink(missing_ok=True)
        return True

    def claim(self, name: str) -> bool:
        """Set a flag once across workers: True for the one caller that set it."""
        with self._db() as db:
            cur = db.execute("INSERT OR IGNORE INTO settings VALUES (?, '1')", (name,))
            return cur.rowcount == 1


def _catalogue_row(dataset_id: str, digest: str, final_name: str, ds: AreaDataset, extra: tuple, wkb=None) -> tuple:
    """The catalogue row in COLUMNS order; ``extra`` holds the columns from ``derived_from`` on."""
    areas, m = ds.areas, ds.meta
    crs = areas.crs.to_string() if areas.crs else None
    groups, geography = json.dumps(list(ds.groups)), geography_fingerprint(ds, wkb)
    bounds = _lonlat_bounds(areas) if len(areas) else None
    head = (dataset_id, digest, final_name, m.name, m.source, m.year, crs, ds.n, ds.total, groups)
    return (*head, ds.name_col, ds.region_col, json.dumps(bounds), m.licence, m.description, *extra, geography)


def _lonlat_bounds(areas: gpd.GeoDataFrame) -> list[float]:
    """The areas' box in longitude/latitude: the projected box's edges transformed (densified), not every vertex
    (10 s at a million areas); it holds the areas' own box, for fitting a map."""
    try:
        to_lonlat = Transformer.from_crs(areas.crs, 4326, always_xy=True)
        return [float(v) for v in to_lonlat.transform_bounds(*areas.total_bounds, densify_pts=21)]
    except ProjError:
        return [math.nan] * 4  # shown as no bounds (see _row)


class _Tx:
    """``with registry._db() as db``: one IMMEDIATE transaction, committed or rolled back."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


def register_bundled(registry: Registry, bundled_dir: Path) -> None:
    """Register the bundled samples once, at the first start of a fresh data directory: Berlin first (the series
    a new user sees), then Georgia (the pysal cross-checks)."""
    from .bundled import register_berlin

    register_berlin(registry, bundled_dir)
    boundaries = bundled_dir / "boundaries" / "georgia_counties.gpkg"
    counts = bundled_dir / "census" / "georgia_counties_1990.csv"
    if not boundaries.exists() or not registry.claim("bundled:georgia-1990"):
        return
    from spatial.io import load_dataset

    ds = load_dataset(
        boundaries,
        counts=counts,
        key="area_key",
        total="total_population",
        groups=["foreign_born", "native_born", "black", "not_black", "rural"],
        meta=Metadata(
            name="Georgia counties, 1990 census",
            source="US Census 1990 via libpysal 'georgia' example",
            year=1990,
            licence="public domain (US Census)",
        ),
    )
    registry.put("georgia-1990", ds, replace=True)
