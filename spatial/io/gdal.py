"""GDAL, locked down: only the drivers segmap reads, no network, and never a path named inside a file.

GDAL picks a driver by sniffing the bytes, and some drivers follow what a file names: an OGR VRT named
``x.geojson`` opens ``CSV:/etc/passwd`` or ``/vsicurl/http://…``. GDAL has no per-call driver choice that
pyogrio exposes, so the process keeps only the four vector drivers segmap reads (``GDAL_SKIP``, GDAL's own
run-time mitigation); each has a distinct signature that :mod:`spatial.io.checks` verifies before GDAL sees
the bytes, so the driver is the one the declared format names. None of the four opens another source.
"""

from __future__ import annotations

import io
import logging
import warnings

import geopandas as gpd
import pyogrio

from ..errors import ValidationError, problem

log = logging.getLogger("segmap.io")

DRIVERS = frozenset({"GeoJSON", "GPKG", "ESRI Shapefile", "FlatGeobuf"})
# Defence in depth, each verified by tests/test_upload_attacks.py: even a kept driver reaches no network.
CONFIG = {
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".segmap-no-network",  # /vsicurl/, /vsis3/ … refuse every URL
    "GDAL_HTTP_TIMEOUT": "1",
    "GDAL_HTTP_CONNECTTIMEOUT": "1",
    "GDAL_HTTP_MAX_RETRY": "0",
    "GDAL_DISABLE_READDIR_ON_OPEN": "TRUE",  # no directory listing around an opened file
    "OGR_SQLITE_ALLOW_EXTERNAL_ACCESS": "NO",  # GeoPackage SQL cannot open other files (VirtualOGR)
    "GDAL_VRT_ENABLE_PYTHON": "NO",
}
# pyogrio names its in-memory file without an extension; GDAL then warns that a GeoPackage lacks ".gpkg".
warnings.filterwarnings("ignore", message=".*non conformant file extension", category=RuntimeWarning)


def _lock_down() -> bool:
    """Unload every vector driver but :data:`DRIVERS` and set :data:`CONFIG`; True when it held."""
    extra = set(pyogrio.list_drivers()) - DRIVERS
    options = dict(CONFIG)
    if extra:
        current = pyogrio.get_gdal_config_option("GDAL_SKIP") or ""
        skip = {s.strip() for s in current.split("," if "," in current else None) if s.strip()} | extra
        options["GDAL_SKIP"] = ",".join(sorted(skip))  # commas: driver names have spaces
    pyogrio.set_gdal_config_options(options)
    if extra:
        # GDALAllRegister ends by unloading each driver named in GDAL_SKIP (AutoSkipDrivers).
        register = getattr(getattr(pyogrio, "_ogr", None), "_register_drivers", None)
        if register is not None:
            register()
    left = set(pyogrio.list_drivers()) - DRIVERS
    if left:
        log.error("GDAL drivers %s could not be unloaded: uploads in GDAL formats are refused", sorted(left))
    return not left


_lock_down()


def read_vector(source: bytes | str, label: str, name: str, **open_options) -> gpd.GeoDataFrame:
    """Read the first layer of ``source`` (bytes, read in memory, or a local path) with the locked-down GDAL.

    GDAL's messages name in-memory paths, drivers and configuration options: they are logged, and the
    user gets a plain sentence instead.
    """
    if not set(pyogrio.list_drivers()) <= DRIVERS and not _lock_down():  # checked each time: cheap, and sure
        raise ValidationError(
            problem(
                "format_unavailable",
                f"This server cannot read {label} files safely; upload the layer as GeoParquet instead",
            )
        )
    try:
        return pyogrio.read_dataframe(io.BytesIO(source) if isinstance(source, bytes) else source, **open_options)
    except Exception as exc:
        log.warning("GDAL could not read %r as %s: %s", name, label, exc)
        raise ValidationError(
            problem(
                "unreadable",
                f"Could not read {name!r} as {label}: the file is damaged or is not "
                f"a valid {label} file{_json_hint(source, label)}. Check that it opens in QGIS, "
                "export it again and upload that",
            )
        ) from None


def _json_hint(source, label: str) -> str:
    """Where a GeoJSON file stops being JSON, told by Python's parser rather than GDAL's."""
    if label != "GeoJSON" or not isinstance(source, bytes):
        return ""
    import json

    try:
        json.loads(source)
    except (ValueError, RecursionError) as exc:
        return f" ({exc.msg}, line {exc.lineno} column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
    return ""
