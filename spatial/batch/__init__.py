"""Batch runs: the same indices for many places and dates, one independent job each.

* :mod:`.manifest` reads the list of jobs (a CSV or YAML manifest, or one national Parquet file split by
  place × date) and refuses a malformed manifest before anything runs, naming the line;
* :mod:`.job` runs one job: pure computation on the protected table, no HTTP, no Dask;
* :mod:`.table` is the tidy result table (one row per place, date, group and index), kept one file per
  finished job so an interrupted run resumes where it stopped;
* :mod:`.engine` hands the jobs to ``dask.distributed`` (a LocalCluster or an existing scheduler): the only
  module that imports Dask.
"""

from __future__ import annotations

from .manifest import Job, ManifestError, read_manifest, split_national
from .table import COLUMNS

__all__ = ["COLUMNS", "Job", "ManifestError", "read_manifest", "split_national"]
