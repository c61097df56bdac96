"""Zipped shapefiles: members checked before any is decompressed, vertices counted from record headers."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

from ..errors import ValidationError, problem
from .checks import too_complex, too_large

MAX_ZIP_MEMBERS = 1000  # a shapefile is a handful of files; a central directory of millions costs gigabytes
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf")
_OPTIONAL_PARTS = (".prj", ".cpg")


def unpack_shapefile(source: bytes | str | Path, name: str, limit: int, max_vertices: int | None) -> bytes:
    """The shapefile parts of a zip, re-packed flat and uncompressed for GDAL.

    Members are checked before any is decompressed: their number, their compression (deflate or stored:
    bzip2 and lzma expand a few KB into gigabytes in one step) and their declared sizes, which zipfile
    enforces while inflating.
    """
    raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    if raw.count(b"PK\x01\x02") > MAX_ZIP_MEMBERS:  # central-directory entries, counted before parsing them
        raise ValidationError(
            problem(
                "bad_zip",
                f"The zip holds more than {MAX_ZIP_MEMBERS:,} files; a zipped shapefile "
                "needs only its .shp, .shx, .dbf and .prj",
            )
        )
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
    except Exception:  # zipfile raises BadZipFile, OSError, ValueError … on damaged archives
        raise ValidationError(
            problem("bad_zip", f"Could not read {name!r}: the file is damaged or not a zip archive")
        ) from None
    with zf:
        shp, parts = _parts(zf, limit)
        data = _read_parts(zf, parts, name)
    if not data[".shp"].startswith(b"\x00\x00\x27\x0a"):
        raise ValidationError(problem("wrong_format", f"{shp!r} in the zip is not a shapefile .shp"))
    check_shp_vertices(data[".shp"], max_vertices)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as out:  # flat: GDAL reads the parts at the zip's root
        for ext, content in data.items():
            out.writestr("layer" + ext, content)
    return buf.getvalue()


def _parts(zf: zipfile.ZipFile, limit: int) -> tuple[str, dict[str, zipfile.ZipInfo]]:
    """The one .shp's name and its parts by extension, from the directory alone (nothing decompressed)."""
    members = [
        m
        for m in zf.infolist()
        if not m.is_dir() and not Path(m.filename).name.startswith(".") and not m.filename.startswith("__MACOSX/")
    ]
    shps = [m for m in members if m.filename.lower().endswith(".shp")]
    if len(shps) != 1:
        raise ValidationError(problem("bad_zip", f"The zip must hold exactly one .shp; found {len(shps)}"))
    expanded = sum(m.file_size for m in members)
    if expanded > limit:
        raise too_large("The zip", expanded, limit)
    stem = shps[0].filename[:-4]
    parts = {m.filename[len(stem) :].lower(): m for m in members if m.filename.lower().startswith(stem.lower() + ".")}
    parts = {ext: m for ext, m in parts.items() if ext in SHAPEFILE_PARTS + _OPTIONAL_PARTS}
    missing = [p for p in SHAPEFILE_PARTS if p not in parts]
    if missing:
        raise ValidationError(
            problem(
                "incomplete_shapefile",
                f"The zipped shapefile is missing {missing}; include .shp, .shx and .dbf (and .prj)",
            )
        )
    return shps[0].filename, parts


def _read_parts(zf: zipfile.ZipFile, parts: dict[str, zipfile.ZipInfo], name: str) -> dict[str, bytes]:
    """The parts' bytes, decompressed only with deflate (or stored) and within their declared sizes."""
    odd = sorted(
        {
            zipfile.compressor_names.get(m.compress_type, str(m.compress_type))
            for m in parts.values()
            if m.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
        }
    )
    if odd:
        raise ValidationError(
            problem(
                "bad_zip",
                f"The zip uses {' and '.join(odd)} compression; zip the shapefile "
                "again with ordinary (deflate) compression",
            )
        )
    try:
        return {ext: zf.read(m) for ext, m in parts.items()}
    except Exception:  # zlib.error, BadZipFile, NotImplementedError, RuntimeError (encrypted) …
        raise ValidationError(
            problem(
                "bad_zip",
                f"Could not read {name!r}: the zip is damaged, encrypted or uses "
                "a zip feature segmap cannot read; zip the shapefile parts again and upload "
                "that",
            )
        ) from None


def shp_vertices(shp: bytes, stop: int) -> int | None:
    """Points in a .shp from its record headers, without reading a coordinate; stops once past ``stop``.

    None when the records alone pass ``stop`` (each costs a step, whatever it claims to hold).
    """
    pos, total, records, end = 100, 0, 0, len(shp)
    while pos + 12 <= end and total <= stop:
        records += 1
        if records > stop:
            return None
        (length,) = struct.unpack_from(">i", shp, pos + 4)
        body = pos + 8
        (kind,) = struct.unpack_from("<i", shp, body)
        if kind in (3, 5, 13, 15, 23, 25, 31) and body + 44 <= end:  # poly-lines/-gons, multipatch: box, parts, points
            total += max(struct.unpack_from("<i", shp, body + 40)[0], 0)
        elif kind in (8, 18, 28) and body + 40 <= end:  # multipoint: box, points
            total += max(struct.unpack_from("<i", shp, body + 36)[0], 0)
        elif kind in (1, 11, 21):
            total += 1
        pos = body + max(2 * length, 4)
    return total


def check_shp_vertices(shp: bytes, limit: int | None) -> None:
    if limit is None or len(shp) // 16 <= limit:  # a vertex takes 16 bytes at least
        return
    n = shp_vertices(shp, limit)
    if n is None or n > limit:
        raise too_complex(n, limit)
