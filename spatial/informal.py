"""Informal settlements overlaid on areal units: area, count and population per unit.

Both layers are brought to one equal-area CRS (Lambert azimuthal centred on the units) before any
area is measured. Per unit:

* ``informal_area_m2`` / ``informal_area_share`` — area of the *union* of settlement polygons
  inside the unit, so overlapping settlements are not counted twice;
* ``n_settlements`` — settlements with a piece of at least ``sliver_m2`` in the unit;
* ``informal`` — settlement population allocated by area: a settlement spanning several units is
  split in proportion to the area of its pieces (areal weighting, Goodchild & Lam 1980), so every
  person lands in exactly one unit. Each settlement's population is its own, so two overlapping
  settlements keep both populations (they are different people); only their area is unioned.
  Allocations are rounded by largest remainder so the integers sum to the input total;
* ``informal_share`` — informal ÷ the unit's total population, when the units have one (an
  allocation larger than the census total is clipped to it and reported).

Points with a population are allocated to the unit that contains them. Pieces smaller than
``sliver_m2`` are ignored (their population goes to the settlement's other pieces) and counted;
settlements outside every unit are reported, never silently dropped.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .cancel import checkpoint
from .crs import equal_area_crs
from .dataset import ID, AreaDataset, Metadata, validate
from .errors import Problem, ValidationError, problem
from .io import read_boundaries

INFORMAL = "informal"


@dataclass
class InformalOverlay:
    dataset: AreaDataset
    summary: dict
    settlements_outside: pd.DataFrame
    notes: list[Problem] = field(default_factory=list)


def load_settlements(source, filename: str | None = None, population: str | None = None) -> gpd.GeoDataFrame:
    """Read settlement polygons (or points with a population), repairing invalid geometry."""
    gdf = source if isinstance(source, gpd.GeoDataFrame) else read_boundaries(source, filename)
    if gdf.crs is None:
        raise ValidationError(problem("no_crs", "The settlements layer has no CRS; add a .prj or save it with its CRS"))
    if population is not None:
        if population not in gdf.columns:
            raise ValidationError(
                problem(
                    "unknown_column",
                    f"No population column {population!r} in the settlements; columns are {[c for c in gdf.columns if c != 'geometry']}",
                )
            )
        pop = pd.to_numeric(gdf[population], errors="coerce")
        bad = pop.isna() | (pop < 0)
        if bad.any():
            raise ValidationError(
                problem(
                    "bad_count",
                    f"{int(bad.sum())} settlements have a missing, non-numeric or negative {population!r}; fix or set them to 0",
                    gdf.index[bad],
                )
            )
        gdf = gdf.assign(**{population: pop.astype(float)})
    return gdf


def _largest_remainder(values: np.ndarray) -> np.ndarray:
    """Integers with the same (rounded) sum as ``values``, each within 1 of its value."""
    floor = np.floor(values)
    short = int(round(values.sum() - floor.sum()))
    if short > 0:
        floor[np.argsort(-(values - floor), kind="stable")[:short]] += 1
    return floor


def _union_area_per_unit(
    pieces: np.ndarray, piece_area: np.ndarray, unit: np.ndarray, n: int, covered: np.ndarray, unit_area: np.ndarray
) -> np.ndarray:
    """Area of the union of each unit's settlement pieces, so overlapping settlements count once.

    Only units with several pieces need a union, each of its own few small pieces; intersecting
    every unit with the union of all settlements is one giant geometry per unit (minutes at city scale).
    """
    area = np.bincount(unit, weights=piece_area, minlength=n)
    count = np.bincount(unit, minlength=n)
    area[covered] = unit_area[covered]  # a settlement covers the whole unit: nothing to union
    shared = np.flatnonzero((count[unit] > 1) & ~covered[unit])
    if len(shared):
        order = shared[np.argsort(unit[shared], kind="stable")]
        units, starts, sizes = np.unique(unit[order], return_index=True, return_counts=True)
        # One row of pieces per unit, padded with None (ignored), unioned row by row inside GEOS.
        table = np.full((len(units), sizes.max()), None, dtype=object)
        table[np.repeat(np.arange(len(units)), sizes), np.arange(len(order)) - np.repeat(starts, sizes)] = pieces[order]
        area[units] = _parallel(_union_area, table)
    return area


def _union_area(table: np.ndarray) -> np.ndarray:
    return shapely.area(shapely.union_all(table, axis=1))


def _parallel(fn, *arrays: np.ndarray, by: np.ndarray | None = None) -> np.ndarray:
    """``fn`` over chunks of the (equally long) arrays on every core: GEOS releases the GIL while it works.

    ``by`` (sorted): rows with equal values stay in one chunk, so a prepared geometry (whose index GEOS builds
    lazily, unlocked) is never used by two threads."""
    n, cores = len(arrays[0]), os.cpu_count() or 1
    if cores == 1 or n < 20_000:
        return fn(*arrays)
    cuts = np.linspace(0, n, 4 * cores + 1).astype(int)  # a few chunks a core: uneven pieces even out
    if by is not None:
        if (np.diff(by) < 0).any():
            return fn(*arrays)  # not grouped: one thread
        cuts = np.unique(np.append(np.searchsorted(by, by[cuts[:-1]], side="left"), n))
    with ThreadPoolExecutor(cores) as pool:
        parts = list(pool.map(lambda a, b: fn(*(x[a:b] for x in arrays)), cuts[:-1], cuts[1:]))
    return np.concatenate(parts)


def overlay(
    units: AreaDataset | gpd.GeoDataFrame,
    settlements: gpd.GeoDataFrame,
    *,
    population: str | None = None,
    unit_key: str | None = None,
    sliver_m2: float = 1.0,
    name: str | None = None,
    name_col: str | None = None,
) -> InformalOverlay:
    """Measure settlements per unit and return an ordinary dataset with an ``informal`` group."""
    base, groups, total, name_col, meta = _units(units, unit_key, name, name_col)
    notes: list[Problem] = []
    sett, empty, repaired = _clean_settlements(load_settlements(settlements, population=population), notes)
    checkpoint()
    crs = equal_area_crs(base)
    ugeo = np.asarray(base.geometry.to_crs(crs).values, dtype=object)  # plain arrays: no pandas ufunc dispatch
    sgeo = np.asarray(sett.geometry.to_crs(crs).values, dtype=object)
    sgeo = np.where(shapely.is_valid(sgeo), sgeo, shapely.make_valid(sgeo))  # reprojection can pinch rings
    pop = sett[population].to_numpy(float) if population else np.zeros(len(sett))
    alloc = _Allocation.of(ugeo, sgeo, pop, sliver_m2)
    checkpoint()
    informal = _unit_columns(base, alloc, total, notes)
    ds = validate(
        base,
        id_col=ID,
        groups=[*groups, INFORMAL] if INFORMAL not in groups else list(groups),
        total=total or INFORMAL,
        name_col=name_col,
        meta=meta,
    )
    if not total:
        notes.append(
            problem(
                "no_total",
                "The units have no population total: informal population and area are measured, "
                "but shares of population need a total (join census counts to the units)",
            )
        )
    outside = sett.loc[alloc.inside_share == 0].assign(population=pop[alloc.inside_share == 0])
    if len(outside):
        notes.append(
            problem(
                "outside",
                f"{len(outside)} settlements lie outside every unit ({outside['population'].sum():,.0f} people): "
                "reported, not allocated",
                outside.index,
            )
        )
    summary = alloc.summary(crs, pop, informal, len(outside))
    summary.update(repaired=repaired, empty_skipped=empty)
    return InformalOverlay(ds, summary, outside, notes)


def _units(units: AreaDataset | gpd.GeoDataFrame, unit_key, name, name_col):
    """The units' frame (string ``id``), groups, total, name column and metadata."""
    if not isinstance(units, gpd.GeoDataFrame):
        return units.areas.copy(), units.groups, units.total, units.name_col, units.meta
    if units.crs is None:
        raise ValidationError(problem("no_crs", "The units layer has no CRS"))
    key = unit_key or ID
    if key not in units.columns:
        raise ValidationError(
            problem(
                "missing_key",
                f"Unit key {key!r} is not in the units layer; columns are "
                f"{[c for c in units.columns if c != 'geometry']}",
            )
        )
    base = units.rename(columns={key: ID}) if key != ID else units.copy()
    base[ID] = base[ID].astype(str)
    return base, (), None, name_col, Metadata(name=name or "units")


def _clean_settlements(sett: gpd.GeoDataFrame, notes: list[Problem]) -> tuple[gpd.GeoDataFrame, int, int]:
    """Settlements without empty geometries, invalid ones repaired; how many of each, said in ``notes``."""
    empty = sett.geometry.is_empty | sett.geometry.isna()
    if empty.any():
        notes.append(
            problem(
                "empty_geometry",
                f"{int(empty.sum())} settlements have empty geometry and were skipped",
                sett.index[empty],
            )
        )
        sett = sett[~empty]
    invalid = ~sett.geometry.is_valid
    if invalid.any():
        sett = sett.copy()
        sett.loc[invalid, "geometry"] = shapely.make_valid(sett.geometry[invalid].values)
        notes.append(
            problem(
                "repaired_geometry",
                f"{int(invalid.sum())} settlement geometries were invalid and repaired (make_valid)",
                sett.index[invalid],
            )
        )
    return sett, int(empty.sum()), int(invalid.sum())


@dataclass
class _Allocation:
    """Settlements measured per unit (equal-area geometries): union area, population, settlements touching."""

    ugeo: np.ndarray
    sgeo: np.ndarray
    is_point: np.ndarray
    area: np.ndarray  # union of settlement pieces per unit, m²
    allocated: np.ndarray  # population per unit, not yet rounded
    n_touch: np.ndarray
    inside_share: np.ndarray  # per settlement: the part of its area (points: 1) inside some unit
    slivers: int = 0

    @classmethod
    def of(cls, ugeo: np.ndarray, sgeo: np.ndarray, pop: np.ndarray, sliver_m2: float) -> _Allocation:
        n = len(ugeo)
        is_point = shapely.get_type_id(sgeo) == 0  # Point
        out = cls(ugeo, sgeo, is_point, np.zeros(n), np.zeros(n), np.zeros(n, dtype=int), np.zeros(len(sgeo)))
        tree = shapely.STRtree(ugeo)
        if (~is_point).any():
            out._polygons(tree, np.flatnonzero(~is_point), pop, sliver_m2)
        if is_point.any():
            out._points(tree, np.flatnonzero(is_point), pop)
        return out

    def _polygons(self, tree, poly: np.ndarray, pop: np.ndarray, sliver_m2: float) -> None:
        """Pieces = settlement ∩ unit for every intersecting pair (STRtree, vectorised); population by area."""
        ugeo, sgeo, n = self.ugeo, self.sgeo, len(self.ugeo)
        s_idx, u_idx = tree.query(sgeo[poly], predicate="intersects")
        s_idx = poly[s_idx]
        # Where a settlement covers a whole unit the piece is the unit: no intersection to compute.
        shapely.prepare(sgeo[poly])  # each pair's test uses its settlement's index (the query made it already)
        whole = _parallel(shapely.contains_properly, sgeo[s_idx], ugeo[u_idx], by=s_idx)
        checkpoint()
        piece_geoms = ugeo[u_idx].copy()
        piece_geoms[~whole] = _parallel(shapely.intersection, sgeo[s_idx[~whole]], ugeo[u_idx[~whole]])
        pieces = shapely.area(piece_geoms)
        covered = np.zeros(n, dtype=bool)
        covered[u_idx[whole]] = True
        checkpoint()
        self.area = _union_area_per_unit(piece_geoms, pieces, u_idx, n, covered, shapely.area(ugeo))
        small = pieces < sliver_m2
        self.slivers = int(small.sum())
        pieces = np.where(small, 0.0, pieces)
        s_area = shapely.area(sgeo)
        inside = np.bincount(s_idx, weights=pieces, minlength=len(sgeo))
        self.inside_share[poly] = np.divide(inside[poly], s_area[poly], out=np.zeros(len(poly)), where=s_area[poly] > 0)
        # A settlement's whole population goes to its pieces inside units, by area: a sliver of it
        # over water or beyond the city edge has no units to live in, and nobody is lost.
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = np.where(inside[s_idx] > 0, pieces / inside[s_idx], 0.0)
        np.add.at(self.allocated, u_idx, pop[s_idx] * weight)
        np.add.at(self.n_touch, u_idx, (pieces > 0).astype(int))

    def _points(self, tree, pts: np.ndarray, pop: np.ndarray) -> None:
        p_idx, u_idx = tree.query(self.sgeo[pts], predicate="within")
        first = pd.Series(u_idx).groupby(p_idx).first()  # a point on a shared border goes to one unit
        np.add.at(self.allocated, first.to_numpy(), pop[pts[first.index.to_numpy()]])
        np.add.at(self.n_touch, first.to_numpy(), 1)
        self.inside_share[pts[first.index.to_numpy()]] = 1.0

    def summary(self, crs, pop: np.ndarray, informal: np.ndarray, n_outside: int) -> dict:
        unit_area, city_area = shapely.area(self.ugeo), float(shapely.area(self.ugeo).sum())
        partial = (self.inside_share > 0) & (self.inside_share < 1 - 1e-9)
        outside_area = (shapely.area(self.sgeo) * (1 - self.inside_share))[~self.is_point]
        return {
            "units": len(unit_area),
            "settlements": len(self.sgeo),
            "polygons": int((~self.is_point).sum()),
            "points": int(self.is_point.sum()),
            "crs": crs.to_string() if hasattr(crs, "to_string") else str(crs),
            "informal_area_m2": float(self.area.sum()),
            "city_area_m2": city_area,
            "area_share_of_city": float(self.area.sum() / city_area) if city_area else 0.0,
            "population_input": float(pop.sum()),
            "population_allocated": float(informal.sum()),
            "population_outside_units": float(np.where(self.inside_share == 0, pop, 0.0).sum()),
            "settlements_outside": n_outside,
            "settlements_partly_outside": int(partial.sum()),
            "area_outside_units_m2": float(outside_area.sum()),
            "slivers_ignored": self.slivers,
        }


def _unit_columns(base: gpd.GeoDataFrame, alloc: _Allocation, total: str | None, notes: list[Problem]) -> np.ndarray:
    """Add the per-unit columns to ``base``; the integer informal population (clipped to ``total``)."""
    n, unit_area = len(base), shapely.area(alloc.ugeo)
    base["informal_area_m2"] = alloc.area
    base["informal_area_share"] = np.divide(alloc.area, unit_area, out=np.zeros(n), where=unit_area > 0)
    base["n_settlements"] = alloc.n_touch
    informal = _largest_remainder(alloc.allocated)
    if total:
        t = base[total].to_numpy(float)
        over = informal > t
        if over.any():
            notes.append(
                problem(
                    "clipped",
                    f"{int(over.sum())} units were allocated more settlement population than their census "
                    f"total {total!r}; clipped to the total",
                    base[ID][over],
                )
            )
            informal = np.minimum(informal, t)
        base["informal_share"] = np.divide(informal, t, out=np.zeros(n), where=t > 0)
    base[INFORMAL] = informal
    return informal
