"""The validated data model every analysis stands on: areas, counts and metadata.

An :class:`AreaDataset` holds one row per area with a unique string ``id``, a
geometry, a ``total`` column and one or more group columns (float64 counts),
plus :class:`Metadata`. It is built by :func:`validate` (directly or through
:func:`spatial.io.load_dataset`), which either returns a clean dataset with a
list of repairs, or raises :class:`~spatial.errors.ValidationError` naming
every offending id.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .coords import coordinate_problems
from .counts import TOLERANCE_HINT, as_counts, clip_to_total
from .crs import to_metric
from .errors import Problem, ValidationError, format_ids, problem
from .lru import LRU

ID = "id"
# Column names that may reach published pages, tiles and tables: letters, digits and '_', not starting with a digit.
SAFE_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def check_column_names(**roles: str | Sequence[str] | None) -> None:
    """Refuse declared column names outside :data:`SAFE_COLUMN` (an upload's groups, total, key …), naming each."""
    bad = []
    for role, names in roles.items():
        for name in [names] if isinstance(names, str) else (names or []):
            if name is not None and not SAFE_COLUMN.fullmatch(str(name)):  # fullmatch: '$' allows a final \n
                bad.append(f"{role} {name!r}")
    if bad:
        raise ValidationError(
            problem(
                "unsafe_column_name",
                f"Column names must be 1–63 letters, digits or '_', not starting "
                f"with a digit (e.g. foreign_born); rename these in the file: {', '.join(bad)}",
            )
        )


@dataclass(frozen=True)
class Metadata:
    name: str = "dataset"
    source: str | None = None
    year: int | None = None
    crs: str | None = None  # CRS of the input layer, as given
    licence: str | None = None
    description: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__.items())


@dataclass
class AreaDataset:
    """Validated areas with counts. Use :func:`validate` to build one."""

    areas: gpd.GeoDataFrame
    total: str
    groups: tuple[str, ...]
    meta: Metadata = field(default_factory=Metadata)
    name_col: str | None = None
    region_col: str | None = None
    repairs: list[Problem] = field(default_factory=list)
    # The shapes checked for overlapping each other (spatial.overlaps.mark_checked): copied by ``replace``, and
    # trusted only for these very shape objects, so storing the dataset does not check them again.
    overlaps_checked: np.ndarray | None = field(default=None, repr=False, compare=False)
    # Spatial weights built on these areas (spatial.weights): not copied by ``subset``, whose areas differ.
    weights_cache: LRU = field(default_factory=lambda: LRU(8), init=False, repr=False, compare=False)

    @property
    def n(self) -> int:
        return len(self.areas)

    @property
    def ids(self) -> np.ndarray:
        return self.areas[ID].to_numpy()

    @property
    def count_columns(self) -> list[str]:
        return [self.total, *[g for g in self.groups if g != self.total]]

    def column(self, name: str) -> np.ndarray:
        self._require(name)
        if name == "geometry" or not pd.api.types.is_numeric_dtype(self.areas[name]):
            raise ValidationError(
                problem(
                    "not_counts",
                    f"Column {name!r} is not a count column (it holds text or shapes); "
                    f"count columns are {list(self.count_columns)}",
                )
            )
        return self.areas[name].to_numpy(dtype=float)

    def require_declared(self, name: str, role: str, *, total: bool = False) -> str:
        """``name`` if it is a declared group (or, with ``total``, the declared total) usable as ``role``; else a
        ValidationError naming the column and the role. Undeclared columns are never public."""
        allowed = [*self.groups, *([self.total] if total else [])]
        if name in allowed:
            return name
        if name == self.total:
            why = "is the dataset's total, not a group"
        elif name not in self.areas.columns:
            why = "is not a column of this dataset"
        elif name == ID or name == self.areas.geometry.name or not pd.api.types.is_numeric_dtype(self.areas[name]):
            why = "is not a count column (it holds ids, text or shapes)"
        else:
            why = "was not declared as a group at upload"
        raise ValidationError(problem("bad_column_role", f"{role} {name!r} {why}; use one of {allowed}"))

    def counts(self, group: str, total: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Group and total counts as float arrays, for two-group indices (group vs. rest of total)."""
        return self.column(group), self.column(total or self.total)

    def matrix(self, groups: Sequence[str] | None = None) -> np.ndarray:
        """An (n, k) array of group counts for multigroup indices."""
        groups = list(groups or self.groups)
        for g in groups:
            self._require(g)
        return self.areas[groups].to_numpy(dtype=float)

    def share(self, group: str, total: str | None = None) -> np.ndarray:
        """Group ÷ total per area; 0 where the total is 0 (never NaN)."""
        x, t = self.counts(group, total)
        out = np.zeros_like(x)
        np.divide(x, t, out=out, where=t > 0)
        return out

    @cached_property
    def metric(self) -> gpd.GeoDataFrame:
        """The areas in a metric CRS (the input's if projected in metres, else its UTM zone)."""
        return to_metric(self.areas)

    def _require(self, name: str) -> None:
        if name not in self.areas.columns:
            numeric = [
                c
                for c in self.areas.columns
                if c not in (ID, "geometry") and pd.api.types.is_numeric_dtype(self.areas[c])
            ]
            raise ValidationError(
                problem(
                    "unknown_column", f"No column {name!r} in dataset {self.meta.name!r}; count columns are {numeric}"
                )
            )

    def subset(self, mask: np.ndarray) -> AreaDataset:
        """A new dataset of the areas where ``mask`` is true (e.g. for bootstraps or regions)."""
        return replace(self, areas=self.areas.loc[np.asarray(mask)].reset_index(drop=True))


def validate(
    gdf: gpd.GeoDataFrame,
    *,
    id_col: str | None,
    groups: Sequence[str],
    total: str | None = None,
    name_col: str | None = None,
    region_col: str | None = None,
    meta: Metadata | None = None,
    tolerance: float = 0,
    from_file: bool = False,
    overlaps: bool = True,
) -> AreaDataset:
    """Check and clean areas + counts; return an :class:`AreaDataset` or raise listing every problem.

    ``tolerance`` (survey estimates): groups may exceed the total by up to this many people in an area,
    alone or added up; such areas are clipped to the total (the excess taken from the largest groups)
    and listed in ``repairs``. Larger excesses are refused, as is any excess by default.
    ``from_file``: the layer was read from a file, so a projected layer lying within ±180 × ±90 is degrees
    mislabelled (see :func:`spatial.coords.coordinate_problems`).
    ``overlaps``: refuse areas that overlap each other (:mod:`spatial.overlaps`), by default: this is the one
    place every dataset is checked, loaded from a file or built in memory. ``False`` (trusted synthetic layers,
    benchmarks) leaves the dataset unmarked, so storing it for publication checks it then.
    """
    tolerance = float(tolerance or 0)
    if not np.isfinite(tolerance) or tolerance < 0:
        raise ValidationError(problem("bad_parameter", f"tolerance must be a number of people ≥ 0, got {tolerance:g}"))
    groups = list(dict.fromkeys(groups))
    _check_layer(gdf, groups)
    problems: list[Problem] = []
    repairs: list[Problem] = []
    gdf = _with_ids(gdf.copy(), id_col, problems)
    ids = gdf[ID]
    roles = _roles(gdf, groups, total, name_col, region_col)
    for role, col in roles[: len(groups) + (1 if total else 0)]:
        gdf[col] = as_counts(gdf, col, ids, problems, role)
    if total is None:
        total = "total" if "total" not in groups else "total_population"
        gdf[total] = gdf[groups].sum(axis=1)
    else:
        repairs += clip_to_total(gdf, [g for g in groups if g != total], total, tolerance, ids, problems)
    geometry_found, invalid = geometry_problems(
        gdf.geometry, ids, degrees_as_metres=from_file, refused=bool(problems), overlaps=overlaps
    )
    if problems or geometry_found:
        raise ValidationError(problems + geometry_found)
    repairs += _repair_geometry(gdf, ids, invalid)
    if gdf.geometry.name != "geometry":
        gdf = gdf.rename_geometry("geometry")
    keep = [ID, *([name_col] if name_col else []), *([region_col] if region_col else []), total]
    keep += [g for g in groups if g != total]
    extra = [c for c in gdf.columns if c not in keep and c != "geometry"]
    gdf = gdf[keep + extra + ["geometry"]].reset_index(drop=True)
    meta = meta or Metadata()
    ds = AreaDataset(
        gdf,
        total=total,
        groups=tuple(g for g in groups if g != total),
        meta=replace(meta, crs=meta.crs or gdf.crs.to_string()),
        name_col=name_col,
        region_col=region_col,
        repairs=repairs,
    )
    if overlaps:
        from .overlaps import mark_checked

        mark_checked(ds)
    return ds


def _check_layer(gdf: gpd.GeoDataFrame, groups: list[str]) -> None:
    """What stops validation before any column is read: no group, no feature, no CRS."""
    if not groups:
        raise ValidationError(problem("no_group", "Name at least one group column (e.g. --group foreign_born)"))
    if len(gdf) == 0:
        raise ValidationError(problem("empty", "The boundary layer has no features"))
    if gdf.crs is None:
        raise ValidationError(
            problem(
                "no_crs",
                "The boundary layer has no CRS: add a .prj file or use a format that stores it (GeoPackage, GeoJSON is EPSG:4326)",
            )
        )


def _with_ids(gdf: gpd.GeoDataFrame, id_col: str | None, problems: list[Problem]) -> gpd.GeoDataFrame:
    """The areas with a string ``id`` column (1, 2, … without ``id_col``); missing and duplicate ids are problems."""
    if id_col is None:
        gdf[ID] = [str(i) for i in range(1, len(gdf) + 1)]
        return gdf
    if id_col not in gdf.columns:
        raise ValidationError(
            problem(
                "missing_key", f"No id column {id_col!r}; columns are {[c for c in gdf.columns if c != 'geometry']}"
            )
        )
    raw = gdf[id_col]
    missing = raw.isna() | (raw.astype(str).str.strip() == "")
    if missing.any():
        rows = np.flatnonzero(missing.to_numpy())
        problems.append(
            problem(
                "missing_id", f"{len(rows)} areas have no id in {id_col!r}; give every area an id (rows, 0-based)", rows
            )
        )
    ids = raw.astype(str).str.strip()
    ids = ids.str.replace(r"\.0$", "", regex=True) if pd.api.types.is_float_dtype(raw) else ids
    gdf = gdf.drop(columns=[id_col]) if id_col != ID else gdf
    gdf[ID] = ids
    dup = gdf[ID].duplicated(keep=False) & ~missing
    if dup.any():
        problems.append(
            problem(
                "duplicate_id",
                f"Id column {id_col!r} has duplicate ids; each area needs a unique id",
                sorted(set(gdf.loc[dup, ID])),
            )
        )
    return gdf


def _roles(gdf, groups, total, name_col, region_col) -> list[tuple[str, str]]:
    """(role, column) of every declared column, groups first then the total; absent or misused columns refused."""
    roles = [
        *(("Group", g) for g in groups),
        *([("Total", total)] if total else []),
        *([("Name column", name_col)] if name_col else []),
        *([("Region column", region_col)] if region_col else []),
    ]
    absent = [c for _, c in roles if c not in gdf.columns]
    if absent:
        cols = [c for c in gdf.columns if c not in ("geometry", ID)]
        raise ValidationError(problem("unknown_column", f"Columns {absent} not found; available columns are {cols}"))
    misused = [
        f"{role.lower()} {c!r} is the areas' " + ("shapes" if c != ID else "ids")
        for role, c in roles
        if c == gdf.geometry.name or c == "geometry" or (c == ID and role in ("Group", "Total"))
    ]
    if misused:
        raise ValidationError(
            problem("bad_column_role", f"{'; '.join(misused)}: name a column of counts (or of names, regions) instead")
        )
    return roles


def geometry_problems(
    geom: gpd.GeoSeries,
    ids: pd.Series,
    *,
    degrees_as_metres: bool = False,
    refused: bool = False,
    overlaps: bool = False,
) -> tuple[list[Problem], np.ndarray]:
    """Problems with the areas' shapes, and which areas are invalid (self-intersecting …) but repairable.

    Repairable areas are named among the problems only when something is refused (``refused``: by the caller):
    one answer then says everything to fix (a refused upload is not repaired: the user would meet them next).
    ``overlaps``: areas overlapping each other are a problem too (:mod:`spatial.overlaps`)."""
    problems = []
    empty = (geom.isna() | geom.is_empty).to_numpy()
    if empty.any():
        problems.append(
            problem(
                "empty_geometry", "Areas with empty or missing geometry; give them a polygon or remove them", ids[empty]
            )
        )
    polygonal = geom.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy() | empty
    if not polygonal.all():
        problems.append(problem("not_polygon", "Areas must be polygons; these are points or lines", ids[~polygonal]))
    # NaN, 1e15, metres labelled as degrees: refused before repair, reprojection or storage choke on them.
    # (Degrees labelled as metres are caught for files only: in-memory grids of unit squares are legitimate.)
    problems += coordinate_problems(geom.values, geom.crs, ids.to_numpy(), degrees_as_metres=degrees_as_metres)
    invalid = polygonal & ~empty & ~shapely.is_valid(geom.values)
    if overlaps:
        problems += _overlap_problems(geom, ids, polygonal & ~empty, invalid, problems)
    if problems or refused:
        named = {i for p in problems if p.code == "non_finite_coordinates" for i in p.ids}
        invalid &= ~ids.isin(named).to_numpy()
        if invalid.any():
            problems.append(_invalid_problem(geom, ids, invalid))
    return problems, invalid


def _overlap_problems(geom, ids, usable: np.ndarray, invalid: np.ndarray, found: list[Problem]) -> list[Problem]:
    """Areas overlapping each other, measured on repaired copies of invalid shapes; NaN vertices left out."""
    from .overlaps import refusal_of

    usable = usable & ~ids.isin({i for p in found if p.code == "non_finite_coordinates" for i in p.ids}).to_numpy()
    refusal = refusal_of(geom.values, ids.to_numpy(), usable=usable, invalid=invalid)
    return [refusal] if refusal else []


def _invalid_problem(geom: gpd.GeoSeries, ids: pd.Series, invalid: np.ndarray) -> Problem:
    rows = np.flatnonzero(invalid)
    why = shapely.is_valid_reason(geom.values[rows[:3]])
    return problem(
        "invalid_geometry",
        f"{len(rows)} {'area has' if len(rows) == 1 else 'areas have'} invalid geometry ({'; '.join(why)}); "
        "segmap would repair them with make_valid "
        "once the other problems are fixed, or fix them in the source (e.g. QGIS Fix geometries)",
        ids.to_numpy()[rows],
    )


def _repair_geometry(gdf: gpd.GeoDataFrame, ids: pd.Series, invalid: np.ndarray) -> list[Problem]:
    """Invalid polygons made valid in place (their polygonal part); refused if nothing is left."""
    if not invalid.any():
        return []
    geom = gdf.geometry
    fixed = shapely.make_valid(geom.values[invalid])
    # make_valid can return collections with stray lines: keep the polygonal part.
    gdf.loc[invalid, gdf.geometry.name] = [shapely.force_2d(_polygonal_part(g)) for g in fixed]
    still_empty = gdf.geometry.is_empty
    if still_empty.any():
        raise ValidationError(
            problem(
                "empty_geometry", "Geometries are empty after repair (degenerate polygons); fix them", ids[still_empty]
            )
        )
    return [
        problem("repaired_geometry", f"Repaired {int(invalid.sum())} invalid geometries with make_valid", ids[invalid])
    ]


def _polygonal_part(g):
    if g.geom_type in ("Polygon", "MultiPolygon"):
        return g
    parts = [p for p in getattr(g, "geoms", []) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


__all__ = ["AreaDataset", "Metadata", "validate", "geometry_problems", "ID", "format_ids", "TOLERANCE_HINT"]
