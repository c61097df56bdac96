"""GeoPackages GDAL would read by running SQL (views, virtual or computed columns), refused from the schema alone."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import ValidationError, problem


def check_geopackage(source: bytes | str | Path, name: str) -> None:
    """Refuse a GeoPackage whose layers GDAL would read by running SQL: views, virtual or computed columns.

    Read with SQLite on a private in-memory copy (or read-only on a local path); only the schema is read,
    no view or table of the file is queried. Triggers run only on writes, and GDAL opens uploads read-only.
    """
    con = sqlite3.connect(":memory:")
    try:
        if isinstance(source, bytes):
            con.deserialize(source)
        else:
            con.close()
            con = sqlite3.connect(Path(source).resolve().as_uri() + "?mode=ro", uri=True)
        con.execute("PRAGMA trusted_schema = OFF")
        _check_schema(con, name)
    except ValidationError:
        raise
    except (sqlite3.Error, UnicodeDecodeError, ValueError):
        raise ValidationError(
            problem(
                "unreadable",
                f"{name!r} is not a valid GeoPackage: its SQLite database is damaged. "
                "Export the layer again and upload that",
            )
        ) from None
    finally:
        con.close()


def _check_schema(con: sqlite3.Connection, name: str) -> None:
    """Every layer and every table GDAL itself queries: plain tables only (a spatial index the one virtual one)."""
    objects = {r[0].lower(): (r[0], r[1], r[2] or "") for r in con.execute("SELECT name, type, sql FROM sqlite_master")}
    if objects.get("gpkg_contents", ("", ""))[1] != "table":
        raise ValidationError(
            problem(
                "wrong_format",
                f"{name!r} is an SQLite database but not a GeoPackage (it has no "
                "gpkg_contents table). Export the layer as a GeoPackage and upload that",
            )
        )
    layers = [str(r[0]).lower() for r in con.execute("SELECT table_name FROM gpkg_contents")]
    system = [n for n in objects if n.startswith(("gpkg", "rtree_", "sqlite_"))]  # what GDAL itself queries
    for key in dict.fromkeys([*layers, *system]):
        table, kind, sql = objects.get(key, (key, None, ""))
        if kind == "view":
            raise _refused(
                f"{table!r} in {name!r} is an SQL view; segmap reads tables only, because reading a view runs its "
                "SQL. Save the layer as a table (e.g. ogr2ogr, or QGIS Export) and upload again"
            )
        if key in layers and kind is None:
            raise ValidationError(problem("wrong_format", f"Layer {table!r} listed in {name!r} has no table"))
        virtual = sql.lstrip().upper().startswith("CREATE VIRTUAL")
        if virtual and (key in layers or "RTREE" not in sql.upper()):  # a spatial index is the one virtual table
            raise _refused(
                f"Layer {table!r} in {name!r} is a virtual table; segmap reads plain tables only. Save it as a "
                "table and upload again"
            )
        if key in layers:
            _check_columns(con, table, name)


def _check_columns(con: sqlite3.Connection, table: str, name: str) -> None:
    quoted = table.replace('"', '""')
    computed = [r[1] for r in con.execute(f'PRAGMA table_xinfo("{quoted}")') if r[6] == 2]
    if computed:
        raise _refused(
            f"Layer {table!r} in {name!r} has computed columns {computed}, whose SQL runs on every read; save the "
            "layer with plain columns (e.g. ogr2ogr) and upload again"
        )


def _refused(message: str) -> ValidationError:
    return ValidationError(problem("gpkg_view", message))
