"""What an upload really is, and what it would cost, found before any decoder sees it.

The file name only says which format the user means. The bytes must carry that format's signature (else
a plain 4xx says what they are); compressed and SQL content is inspected without being decoded or run:
zip members by their declared sizes and compression, GeoPackages by their schema, GeoJSON by counting
positions. Nothing here follows a path or URL named inside a file. GeoPackages are checked in
:mod:`.geopackage`, zipped shapefiles in :mod:`.shapefile`, GeoParquet in :mod:`.parquet`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..errors import ValidationError, problem

LABELS = {
    "GeoJSON": "GeoJSON",
    "GPKG": "GeoPackage",
    "FlatGeobuf": "FlatGeobuf",
    "parquet": "GeoParquet",
    "zip": "a zipped shapefile",
    "ESRI Shapefile": "a shapefile",
    "csv": "CSV",
    "counts-parquet": "Parquet",
}
_SIGNATURES = [
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"SQLite format 3\x00", "sqlite"),
    (b"PAR1", "parquet"),
    (b"fgb\x03", "fgb"),
    (b"\x1f\x8b", "gzip"),
    (b"\x00\x00\x27\x0a", "shp"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!", "rar"),
    (b"%PDF", "pdf"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
]
_KINDS = {
    "zip": "a zip archive",
    "sqlite": "an SQLite database (a GeoPackage?)",
    "parquet": "a Parquet file",
    "fgb": "a FlatGeobuf file",
    "gzip": "gzip-compressed",
    "shp": "the .shp part of a shapefile alone",
    "7z": "a 7-Zip archive",
    "rar": "a RAR archive",
    "pdf": "a PDF document",
    "bzip2": "bzip2-compressed",
    "xz": "xz-compressed",
    "zstd": "zstd-compressed",
    "xml": "XML (an OGR VRT, GML or KML file?)",
    "json": "JSON",
    "text": "text",
    "binary": "binary data",
}
# What the content must be for each declared format (csv: anything that is not a known binary container).
_EXPECTED = {
    "GeoJSON": "json",
    "GPKG": "sqlite",
    "FlatGeobuf": "fgb",
    "parquet": "parquet",
    "counts-parquet": "parquet",
    "zip": "zip",
    "ESRI Shapefile": "shp",
}
_RENAME = {
    "zip": "If it holds a shapefile, upload it named .zip; unzip any other layer first",
    "sqlite": "If it is a GeoPackage, name it .gpkg",
    "parquet": "If it is GeoParquet, name it .parquet",
    "fgb": "If it is FlatGeobuf, name it .fgb",
}
_FORMATS = "GeoJSON, GeoPackage, a zipped shapefile, GeoParquet or FlatGeobuf"


def sniff(head: bytes) -> str:
    """The kind of content ``head`` (the first bytes) begins, by signature, never by name."""
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return kind
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] in (b"{", b"["):
        return "json"
    if text[:1] == b"<":
        return "xml"
    try:
        head[:512].decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head[:512]) - 4:  # not merely a character cut at the edge
            return "binary"
    return "text"


def expect(fmt: str, head: bytes, name: str) -> None:
    """Refuse content that is not ``fmt``, saying what it is instead."""
    kind = sniff(head)
    if fmt == "csv":
        if kind in ("text", "json", "binary"):  # "binary" may be Latin-1 text: pandas names the encoding problem
            return
        raise ValidationError(
            problem(
                "wrong_format",
                f"Could not read the count table {name!r}: it is {_KINDS[kind]}, "
                "not CSV text. Save the table as CSV (UTF-8) or Parquet and upload that",
            )
        )
    if kind == _EXPECTED[fmt] and not (fmt == "GeoJSON" and head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] != b"{"):
        return
    what = "a JSON array, not a GeoJSON object" if kind == "json" else _KINDS[kind]
    advice = _RENAME.get(kind, f"Export the layer as {_FORMATS} and upload that")
    raise ValidationError(
        problem(
            "wrong_format",
            f"Could not read {name!r}: it is named as {LABELS[fmt]} but it is {what}, not {LABELS[fmt]}. {advice}",
        )
    )


def head_of(source: bytes | str | Path, n: int = 1024) -> bytes:
    if isinstance(source, bytes):
        return source[:n]
    with open(source, "rb") as fh:
        return fh.read(n)


def too_complex(vertices: int | None, limit: int) -> ValidationError:
    """``vertices`` None: counting stopped because the parts and rings alone pass the limit."""
    have = f"{vertices:,} vertices" if vertices is not None else "more geometries, parts and rings than that"
    return ValidationError(
        problem(
            "too_complex",
            f"The boundaries may have at most {limit:,} vertices and have {have}; "
            "simplify them first (e.g. QGIS Simplify, or mapshaper -simplify) and upload again",
        )
    )


def too_large(what: str, size: int, limit: int) -> ValidationError:
    return ValidationError(
        problem(
            "too_large",
            f"{what} expands to {size / 2**20:,.0f} MB when decoded, more than the "
            f"{limit / 2**20:,.0f} MB allowed (SEGMAP_MAX_UNCOMPRESSED_MB); upload a smaller "
            "layer or split it",
        )
    )


# -- GeoJSON -------------------------------------------------------------------------------------------------------
_WHITESPACE = np.frombuffer(b" \t\r\n", np.uint8)
_NUMBER_START = np.frombuffer(b"0123456789-+.NI", np.uint8)  # NaN and Infinity too: GDAL's parser takes them


def geojson_positions(data: bytes) -> int:
    """Positions in a GeoJSON text without parsing it: arrays whose first element is a number.

    An upper bound on vertices (a numeric array among the properties counts too), exact for usual files.
    """
    text = np.frombuffer(data, np.uint8)
    text = text[~np.isin(text, _WHITESPACE)]
    after = text[np.flatnonzero(text[:-1] == ord("[")) + 1]
    return int(np.count_nonzero(np.isin(after, _NUMBER_START)))


def check_geojson_vertices(data: bytes, limit: int | None) -> None:
    if limit is None or data.count(b"[") <= limit:  # every position opens a bracket: the cheap bound suffices
        return
    n = geojson_positions(data)
    if n > limit:
        raise too_complex(n, limit)


class _CrsLink(Exception):
    pass


class _Object(dict):
    """A JSON object that remembers every "type" it was given (GDAL takes the first, JSON the last)."""

    types: list


def _c(text) -> str:
    """A string as GDAL's C code sees it: cut at the first NUL, case folded."""
    return str(text).split("\x00", 1)[0].lower()


def _is_link(value) -> bool:
    return isinstance(value, _Object) and any(t.startswith(("url", "link")) for t in value.types)


def _object(pairs):
    obj = _Object(pairs)
    obj.types = [_c(v) for k, v in pairs if _c(k) == "type"]
    if any(_c(key) == "crs" and _is_link(value) for key, value in pairs):
        raise _CrsLink
    return obj


_ESCAPED_LETTER = re.compile(rb"\\u00[4-7][0-9a-f]")  # an ASCII letter written as \u00XX: "crs" could hide in it
_NUMBERS = re.compile(rb"\[[-+0-9.eE,\s]*\]")  # an array of numbers: coordinates, nothing to do with a CRS
_WS = b" \t\r\n"


def check_geojson_crs(data: bytes, name: str) -> None:
    """Refuse a GeoJSON 'crs' member of type link or url, anywhere in the file.

    GDAL fetches such a CRS over HTTP when it reads the file, and no GDAL option stops that fetch (a proxy is
    bypassed by NO_PROXY). GDAL matches keys and types case-insensitively, so every quoted "crs" in any case
    is found and the value after it parsed. A key may also hide behind \\u escapes or need a lenient parser
    (comments, single quotes): then the whole file is parsed, its coordinate arrays dropped first.
    """
    lowered = data.lower()
    if b"\\u00" in lowered and _ESCAPED_LETTER.search(lowered):
        return _parse_whole(data, name)
    decoder = json.JSONDecoder(object_pairs_hook=_object)
    at = lowered.find(b"crs")
    while at >= 0:
        end, at = at + 3, lowered.find(b"crs", at + 3)
        if lowered[end - 4 : end - 3] not in (b'"', b"'"):
            continue  # not the start of a string, e.g. "urn:ogc:def:crs:EPSG::32616"
        if lowered[end : end + 1] not in (b'"', b"'"):
            if lowered[end : end + 1] == b"\x00" or lowered.startswith(b"\\u0000", end):
                return _parse_whole(data, name)  # "crs" cut by a NUL: GDAL's C strings end there
            continue
        rest = data[end + 1 : end + 65537].lstrip(_WS)
        if rest[:1] in (b",", b"}", b"]"):
            continue  # a string value, not a key
        if rest[:1] != b":":
            return _parse_whole(data, name)  # a comment before the colon, or text inside a string
        try:
            value, _ = decoder.raw_decode(rest[1:].lstrip(_WS).decode("utf-8", "replace"))
        except _CrsLink:
            raise _refuse_link(name) from None
        except ValueError:  # the value goes on past the window, or is not plain JSON
            return _parse_whole(data, name)
        if _is_link(value):
            raise _refuse_link(name)


def _parse_whole(data: bytes, name: str) -> None:
    text, changed = data, 1
    while changed:  # nested coordinate arrays collapse one level a pass
        text, changed = _NUMBERS.subn(b"0", text)
    try:
        json.loads(text.decode("utf-8-sig", errors="replace"), object_pairs_hook=_object)
    except _CrsLink:
        raise _refuse_link(name) from None
    except json.JSONDecodeError as exc:
        raise ValidationError(
            problem(
                "unreadable",
                f"Could not read {name!r}: it is not valid JSON ({exc.msg}); "
                "export it again as GeoJSON and upload that",
            )
        ) from None
    except (ValueError, RecursionError):
        raise ValidationError(
            problem(
                "unreadable",
                f"Could not read {name!r}: it is not valid JSON (nested too deeply "
                "or damaged); export it again as GeoJSON and upload that",
            )
        ) from None


def _refuse_link(name: str) -> ValidationError:
    return ValidationError(
        problem(
            "crs_link",
            f"{name!r} has a 'crs' that links to a URL, which segmap does not follow. "
            "Remove the 'crs' member (GeoJSON is then longitude/latitude, EPSG:4326) or name the "
            'CRS instead, e.g. "urn:ogc:def:crs:EPSG::32616"',
        )
    )
