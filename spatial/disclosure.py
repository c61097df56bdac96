"""Disclosure control: every public output is computed from one protected table, never from true counts.

Threat model. The attacker sees every public output of a dataset (indices, local statistics, OGC
items, vector tiles at every zoom, map pages, CSV and images), knows every formula and solves
equations between them; the area geometry, ids and names are public. A count of 1 to
``threshold − 1`` people of a group in an area may identify a family and must not be recoverable.

Two methods, one table each (:func:`protect`):

* ``suppress`` (default) — an area is *withheld* when any of its cells is small: a declared count
  (total or group) from 1 to ``threshold − 1``, a group's complement within the area (total − group,
  e.g. 5 natives beside 9,525 foreign-born) or the rest (total − all groups) in that range. A withheld
  area keeps its geometry, id and name, but all its counts are published as null, and it is left out
  of every public statistic: indices, local statistics (it is neither tested nor anybody's
  neighbour), city-wide shares and tile sums. Because nothing published depends on a withheld
  count, no combination of outputs can solve for one: outputs are identical whatever the hidden
  counts are (``tests/test_disclosure_attacks.py`` checks exactly this, and runs each known attack).
  What is revealed is that some count of a withheld area is small. Zeros are published.
* ``cell_key`` — the cell-key method of the UK's ONS and the Australian ABS, adapted to counts
  without microdata: every cell gets a fixed pseudo-random key from a keyed hash of (dataset
  secret, area id, column), and the key picks a perturbation from a table, so the same cell always
  gets the same published value in every output (differencing across outputs gains nothing). Small
  counts are never published: a count from 1 to ``threshold − 1`` becomes 0 or ``threshold``, with
  probabilities that keep its expected value; larger counts move by −2…+2 (mean 0). Every area and
  statistic is published, computed on the perturbed table. The guarantee is statistical: an attacker
  recovers the perturbed value, not the true one.

Owners (the API key) see the true table (``threshold <= 1``).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field, replace
from functools import cached_property

import geopandas as gpd
import numpy as np
import pandas as pd

from .crs import to_metric
from .dataset import ID, AreaDataset
from .errors import ValidationError, problem

METHODS = ("suppress", "cell_key")
WITHHELD = "suppressed"  # the label of a withheld area in per-area outputs
# cell_key: perturbation of counts >= threshold, by key in [0, 1): -2..+2 with mean 0, variance 1.
_CKM_STEPS = np.array([-2, -1, 0, 1, 2])
_CKM_CDF = np.cumsum([0.075, 0.2, 0.45, 0.2, 0.075])


@dataclass
class PublicData:
    """A dataset as one caller may see it.

    ``dataset`` holds the published areas with their protected counts: every statistic runs on it.
    ``areas`` holds every area in the original order (id, name, region, declared counts, geometry)
    with withheld counts as NaN: maps, tiles and feature lists draw it. ``expand`` puts per-area
    results of ``dataset`` back in that order.
    """

    dataset: AreaDataset
    areas: gpd.GeoDataFrame
    withheld: np.ndarray
    threshold: int = 0
    method: str | None = None
    report: dict | None = None
    _rows: np.ndarray | None = field(default=None, repr=False)  # position in ``areas`` of each dataset row

    # -- what an AreaDataset tells about its areas, for display code --------------------------------------------
    @property
    def meta(self):
        return self.dataset.meta

    @property
    def groups(self) -> tuple[str, ...]:
        return self.dataset.groups

    @property
    def total(self) -> str:
        return self.dataset.total

    @property
    def name_col(self) -> str | None:
        return self.dataset.name_col

    @property
    def count_columns(self) -> list[str]:
        return self.dataset.count_columns

    @property
    def n(self) -> int:
        return len(self.areas)

    @property
    def ids(self) -> np.ndarray:
        return self.areas[ID].to_numpy()

    @property
    def protected(self) -> bool:
        return self.threshold > 1

    @cached_property
    def metric(self) -> gpd.GeoDataFrame:
        return to_metric(self.areas)

    def column(self, name: str) -> np.ndarray:
        """A count column for every area, NaN where withheld."""
        self.dataset._require(name)
        return self.areas[name].to_numpy(dtype=float)

    def share(self, group: str, total: str | None = None) -> np.ndarray:
        """Published share for every area, NaN where withheld."""
        return self.expand(self.dataset.share(group, total))

    def expand(self, values) -> np.ndarray:
        """Per-area values of ``dataset`` in the order of ``areas``; withheld areas get NaN (None for text)."""
        values = np.asarray(values)
        if self._rows is None:
            return values
        out = np.full(
            len(self.areas),
            None if values.dtype.kind in "OUS" else np.nan,
            dtype=object if values.dtype.kind in "OUS" else float,
        )
        out[self._rows] = values
        return out

    def labels(self, labels) -> np.ndarray:
        """Per-area labels of ``dataset`` in the order of ``areas``, withheld areas labelled ``suppressed``."""
        return np.where(self.withheld, WITHHELD, self.expand(np.asarray(labels).astype(str)).astype(object))

    def subset(self, mask: np.ndarray) -> PublicData:
        mask = np.asarray(mask, dtype=bool)
        kept = mask[~self.withheld] if self._rows is not None else mask
        rows = None if self._rows is None else np.flatnonzero(~self.withheld[mask])
        return replace(
            self,
            dataset=self.dataset.subset(kept),
            areas=self.areas.loc[mask].reset_index(drop=True),
            withheld=self.withheld[mask],
            _rows=rows,
        )


def as_public(ds: AreaDataset | PublicData, threshold: int = 0, method: str = "suppress") -> PublicData:
    """``ds`` as protected at ``threshold`` (a :class:`PublicData` is already protected and returned as is)."""
    return ds if isinstance(ds, PublicData) else protect(ds, threshold, method)


def public_columns(ds: AreaDataset) -> list[str]:
    """The only columns any public output may carry: declared ones."""
    return [c for c in (ID, ds.name_col, ds.region_col, *ds.count_columns) if c] + ["geometry"]


def protect(
    ds: AreaDataset, threshold: int, method: str = "suppress", *, secret: bytes | None = None, withhold=None
) -> PublicData:
    """The protected table of ``ds`` at ``threshold`` (``<= 1``: the true data, for owners).

    ``withhold``: ids of areas also withheld by ``suppress`` (secondary suppression, so another dataset of the
    same date cannot be differenced with this one: :mod:`spatial.disclosure_linked`)."""
    if method not in METHODS:
        raise ValidationError(
            problem("bad_parameter", f"Unknown disclosure method {method!r}; choose from {list(METHODS)}")
        )
    threshold = int(threshold)
    if threshold <= 1:
        return PublicData(dataset=ds, areas=ds.areas, withheld=np.zeros(ds.n, bool))
    areas = ds.areas[public_columns(ds)].reset_index(drop=True)
    counts = areas[ds.count_columns].to_numpy(dtype=float)
    if method == "cell_key":
        return _cell_key(ds, areas, counts, threshold, secret)
    withheld = small_cells(counts, threshold).any(axis=1)
    linked = np.isin(areas[ID].astype(str).to_numpy(), [str(i) for i in withhold or ()]) & ~withheld
    withheld |= linked
    published = ds.n - int(withheld.sum())
    if published == 0:
        raise ValidationError(
            problem(
                "all_withheld",
                f"Every area has a count from 1 to {threshold - 1}: nothing can be "
                "published at this disclosure threshold; aggregate the areas or lower the threshold",
            )
        )
    shown = areas.loc[~withheld].reset_index(drop=True)
    public_ds = replace(ds, areas=shown, repairs=[])
    display = areas.copy()
    display.loc[withheld, ds.count_columns] = np.nan
    report = {
        "method": "suppress",
        "threshold": threshold,
        "withheld_areas": int(withheld.sum()),
        "published_areas": published,
        "rule": f"areas with any count from 1 to {threshold - 1} (a group, the total, a group's complement or the "
        "rest) are withheld: their counts are not published and every statistic is computed on the "
        f"{published} other areas",
    }
    if linked.any():
        report["linked_withheld_areas"] = int(linked.sum())
        report["rule"] += (
            f"; {int(linked.sum())} more are withheld because another dataset of the same date on nested areas "
            "would let their neighbours' withheld counts be computed"
        )
    return PublicData(
        dataset=public_ds,
        areas=display,
        withheld=withheld,
        threshold=threshold,
        method="suppress",
        report=report,
        _rows=np.flatnonzero(~withheld),
    )


def small_cells(counts: np.ndarray, threshold: int) -> np.ndarray:
    """Per area and cell, whether it is a small count. Columns of ``counts``: total, then groups.

    Cells are the declared counts, each group's complement (total − group) and the rest (total − all
    groups): any of them from 1 to ``threshold − 1`` identifies few people.
    """
    total, groups = counts[:, :1], counts[:, 1:]
    cells = [counts, total - groups]
    if groups.shape[1] > 1:
        cells.append(total - groups.sum(axis=1, keepdims=True))
    cells = np.hstack(cells)
    return (cells > 1e-9) & (cells < threshold - 1e-9)


def _keys(ds: AreaDataset, columns: list[str], secret: bytes) -> np.ndarray:
    """One uniform key in [0, 1) per (area, column), fixed for the dataset's secret."""
    ids = ds.areas[ID].astype(str).to_numpy()
    out = np.empty((len(ids), len(columns)))
    for j, col in enumerate(columns):
        for i, area in enumerate(ids):
            digest = hmac.new(secret, f"{area}\x00{col}".encode(), hashlib.sha256).digest()
            out[i, j] = int.from_bytes(digest[:7], "big") / 2**56
    return out


def _cell_key(
    ds: AreaDataset, areas: gpd.GeoDataFrame, counts: np.ndarray, threshold: int, secret: bytes | None
) -> PublicData:
    if not secret:
        raise ValidationError(problem("no_secret", "The cell-key method needs the dataset's secret key"))
    keys = _keys(ds, ds.count_columns, secret)
    true = np.rint(counts)
    small = (true > 0) & (true < threshold)
    # Small counts become 0 or the threshold with the probability that keeps their mean: never 1..T-1.
    up = keys < true / threshold
    perturbed = np.where(small, np.where(up, threshold, 0), true + _CKM_STEPS[np.searchsorted(_CKM_CDF, keys)])
    perturbed = np.where((true >= threshold) & (perturbed < threshold), threshold, perturbed)
    perturbed = np.where(true == 0, 0, perturbed)
    # A group cannot exceed its total in the published table either.
    perturbed[:, 1:] = np.minimum(perturbed[:, 1:], perturbed[:, :1])
    display = areas.copy()
    display[ds.count_columns] = perturbed.astype(float)
    public_ds = replace(ds, areas=display, repairs=[])
    report = {
        "method": "cell_key",
        "threshold": threshold,
        "withheld_areas": 0,
        "published_areas": ds.n,
        "rule": f"every count is perturbed by a fixed amount drawn from its cell key (−2…+2, mean 0); counts from 1 "
        f"to {threshold - 1} are published as 0 or {threshold}; every statistic is computed on the "
        "perturbed counts",
    }
    return PublicData(
        dataset=public_ds,
        areas=display,
        withheld=np.zeros(ds.n, bool),
        threshold=threshold,
        method="cell_key",
        report=report,
    )


def protect_frame(frame: pd.DataFrame, data: PublicData) -> pd.DataFrame:
    """A per-area output frame (one row per published area, keyed by ``id``) put on every area of
    ``data``: withheld areas keep id, name and geometry, their other values are null and label ``suppressed``."""
    if data._rows is None:
        return frame
    keep = [c for c in (ID, data.name_col, "geometry") if c and c in data.areas.columns]
    base = data.areas[keep]
    if "geometry" not in frame.columns and "geometry" in base.columns:
        base = base.drop(columns="geometry")
    out = base.merge(
        frame.drop(columns=[c for c in keep if c != ID and c in frame.columns]),
        on=ID,
        how="left",
        validate="one_to_one",
    )
    for col in data.count_columns:  # counts of published areas come from the protected table
        if col in out.columns:
            out[col] = data.areas[col].to_numpy()
    if "label" in out.columns:
        out["label"] = out["label"].astype(object).where(~data.withheld, WITHHELD)
    if isinstance(frame, gpd.GeoDataFrame) and "geometry" in out.columns:
        # The outlines come from ``data.areas``: in its CRS, then into the frame's (a WGS84 frame stays WGS84).
        out = gpd.GeoDataFrame(out, geometry="geometry", crs=data.areas.crs)
        if frame.crs is not None and out.crs is not None and out.crs != frame.crs:
            out = out.to_crs(frame.crs)
    return out
