"""Parquet uploads, measured before they are decoded.

A few KB of Parquet can decode to gigabytes in two ways: a compressed page that inflates (zstd, gzip …),
and dictionary encoding, where one long value is repeated by run-length-coded indices. The footer's sizes
are written by whoever made the file, so they are not trusted: the page headers (what Arrow itself
allocates from) are walked, and dictionary-coded text and binary columns are read still coded, so their
decoded size and vertex count come from the dictionary and the index counts, without expanding them.
"""

from __future__ import annotations

import io
import json
import logging
import struct

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import ValidationError, problem
from .checks import too_complex, too_large

log = logging.getLogger("segmap.io")
_MAX_PAGES = 200_000  # a 50 MB file written with the usual 1 MB pages has a few hundred
_MAX_ELEMENTS = 10_000
_WIDTH = {
    "BOOLEAN": 1,
    "INT32": 4,
    "INT64": 8,
    "INT96": 12,
    "FLOAT": 4,
    "DOUBLE": 8,
    "BYTE_ARRAY": 8,
}  # decoded bytes/value


class _Thrift:
    """Just enough of Thrift's compact protocol to read a Parquet page header."""

    def __init__(self, buf, pos: int):
        self.buf, self.pos = buf, pos

    def byte(self) -> int:
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        shift = value = 0
        while True:
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 70:
                raise ValueError("varint too long")

    def int(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def struct(self, depth: int = 0) -> dict:
        """Fields of a struct: integers and nested structs by field id; everything else skipped."""
        if depth > 8:
            raise ValueError("nested too deep")
        out, fid = {}, 0
        while True:
            head = self.byte()
            kind = head & 0x0F
            if kind == 0:
                return out
            fid = fid + (head >> 4) if head >> 4 else self.int()
            if kind in (4, 5, 6):
                out[fid] = self.int()
            elif kind == 12:
                out[fid] = self.struct(depth + 1)
            else:
                self.skip(kind, depth)

    def _elements(self, n: int, kinds: tuple, depth: int) -> None:
        if n > _MAX_ELEMENTS:  # a page header holds no long list: refuse rather than loop for minutes
            raise ValueError("container too long for a page header")
        for _ in range(n):
            for kind in kinds:
                if kind in (1, 2):  # in a container a bool takes a byte
                    self.pos += 1
                else:
                    self.skip(kind, depth + 1)

    def skip(self, kind: int, depth: int) -> None:
        if kind in (1, 2):  # a bool field carries its value in the type
            return
        if kind == 3:
            self.pos += 1
        elif kind in (4, 5, 6):
            self.varint()
        elif kind == 7:
            self.pos += 8
        elif kind == 8:
            n = self.varint()  # read before moving: ``self.pos += self.varint()`` would add to the old position
            self.pos += n
        elif kind in (9, 10):
            head = self.byte()
            self._elements(head >> 4 if head >> 4 != 15 else self.varint(), (head & 0x0F,), depth)
        elif kind == 11:
            n = self.varint()
            types = self.byte() if n else 0
            self._elements(n, (types >> 4, types & 0x0F), depth)
        elif kind == 12:
            self.struct(depth + 1)
        else:
            raise ValueError(f"unknown thrift type {kind}")
        if self.pos > len(self.buf):
            raise ValueError("past the end")


def _pages(buf, start: int, end: int, budget: list) -> tuple[int, int]:
    """Decompressed bytes of every page in ``buf[start:end]`` and values in its data pages, from the headers."""
    size = values = 0
    pos = start
    while pos < end:
        budget[0] -= 1
        if budget[0] < 0:  # millions of tiny pages: a walk of minutes for nothing a real file needs
            raise ValueError("too many pages")
        reader = _Thrift(buf, pos)
        header = reader.struct()
        uncompressed, compressed = header.get(2, -1), header.get(3, -1)
        if uncompressed < 0 or compressed < 0:
            raise ValueError("bad page header")
        size += uncompressed
        values += max((header.get(5) or header.get(8) or {}).get(1, 0), 0)  # data page (v1 or v2): num_values
        pos = reader.pos + compressed
    return size, values


def decoded_sizes(buf, meta: pq.FileMetaData) -> dict[str, int]:
    """Bytes Arrow would allocate to decode each top-level column, dictionaries still coded (see :func:`check`)."""
    sizes: dict[str, int] = {}
    budget = [_MAX_PAGES]
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            col = group.column(c)
            start = (
                col.dictionary_page_offset
                if col.has_dictionary_page and col.dictionary_page_offset
                else col.data_page_offset
            )
            end = start + col.total_compressed_size
            if not 0 <= start <= end <= len(buf):
                raise ValueError("column chunk outside the file")
            size, values = _pages(buf, start, end, budget)
            schema = meta.schema.column(c)
            width = _WIDTH.get(col.physical_type) or max(schema.length or 8, 1)
            top = schema.path.split(".")[0]
            sizes[top] = sizes.get(top, 0) + size + values * width
    return sizes


class _Budget:
    """Work allowed for counting: every geometry, part and ring costs one, so no file can make it loop for minutes."""

    def __init__(self, left: int):
        self.left = left

    def spend(self, n: int = 1) -> None:
        self.left -= n
        if self.left < 0:
            raise _OverBudget


class _OverBudget(Exception):
    pass


def _wkb_vertices(b, budget: _Budget, pos: int = 0, depth: int = 0) -> tuple[int, int]:
    """(end position, vertices) of the (E)WKB geometry at ``pos``, reading only headers and counts."""
    if depth > 16:
        raise ValueError("geometry nested too deep")
    budget.spend()
    order = "<" if b[pos] == 1 else ">"
    (kind,) = struct.unpack_from(order + "I", b, pos + 1)
    pos += 5
    dims = 2 + bool(kind & 0x80000000) + bool(kind & 0x40000000)
    if kind & 0x20000000:  # EWKB SRID
        pos += 4
    kind &= 0x0FFFFFFF
    dims += {0: 0, 1: 1, 2: 1, 3: 2}.get(kind // 1000, 0)  # ISO Z, M, ZM
    kind %= 1000
    if kind == 1:
        return pos + 8 * dims, 1
    (n,) = struct.unpack_from(order + "I", b, pos)
    pos += 4
    if kind == 2:
        return pos + 8 * dims * n, n
    total = 0
    if kind == 3:
        for _ in range(n):
            budget.spend()
            (points,) = struct.unpack_from(order + "I", b, pos)
            pos += 4 + 8 * dims * points
            total += points
        return pos, total
    if kind in (4, 5, 6, 7):
        for _ in range(n):
            pos, count = _wkb_vertices(b, budget, pos, depth + 1)
            total += count
        return pos, total
    raise ValueError(f"unsupported WKB geometry type {kind}")


def _vertices(column: pa.ChunkedArray, stop: int) -> int | None:
    """Vertices in a WKB column, each distinct dictionary value counted once times its uses; stops past ``stop``.

    None when the geometries, parts and rings alone pass ``stop``: more work than any allowed layer needs.
    """
    total, budget = 0, _Budget(stop)
    try:
        for chunk in column.chunks:
            if pa.types.is_dictionary(chunk.type):
                uses = np.bincount(
                    chunk.indices.drop_null().to_numpy(zero_copy_only=False), minlength=len(chunk.dictionary)
                )
                values = chunk.dictionary
            else:
                uses, values = None, chunk
            for i, wkb in enumerate(values):
                if not wkb.is_valid or (uses is not None and uses[i] == 0):
                    budget.spend()
                    continue
                total += _wkb_vertices(memoryview(wkb.as_buffer()), budget)[1] * (1 if uses is None else int(uses[i]))
                if total > stop:
                    return total
    except _OverBudget:
        return None
    return total


def _is_bytes(t: pa.DataType) -> bool:
    t = t.value_type if pa.types.is_dictionary(t) else t
    return pa.types.is_binary(t) or pa.types.is_string(t) or pa.types.is_large_binary(t) or pa.types.is_large_string(t)


def _coded_size(column: pa.ChunkedArray) -> int:
    """Bytes the column takes once its dictionary is expanded."""
    size = 0
    for chunk in column.chunks:
        if pa.types.is_dictionary(chunk.type):
            lengths = pc.fill_null(pc.binary_length(chunk.dictionary), 0)
            size += int(pc.sum(pc.take(lengths, chunk.indices)).as_py() or 0)
        else:
            size += chunk.nbytes
    return size


def check(data: bytes, name: str, limit: int, max_vertices: int | None = None) -> None:
    """Refuse a Parquet upload that would decode beyond ``limit`` bytes or ``max_vertices``, without decoding it."""
    try:
        pf = pq.ParquetFile(io.BytesIO(data))
        meta = pf.metadata
        sizes = decoded_sizes(memoryview(data), meta)
        size = sum(sizes.values())
        if size > limit:
            raise too_large(f"{name!r}", size, limit)
        schema = pf.schema_arrow
        coded = [f.name for f in schema if _is_bytes(f.type)]
        if not coded:
            return
        # Dictionaries stay coded (read_dictionary): their decoded size is counted, not allocated.
        table = pq.ParquetFile(io.BytesIO(data), read_dictionary=coded).read(columns=coded)
        expanded = {c: _coded_size(table.column(c)) for c in coded}
        size += sum(max(0, expanded[c] - sizes.get(c, 0)) for c in coded)  # beyond what the pages already counted
        if size > limit:
            raise too_large(f"{name!r}", size, limit)
        geo = json.loads((schema.metadata or {}).get(b"geo", b"{}"))
        column = geo.get("primary_column")
        if max_vertices is None or column not in coded:
            return
        if expanded[column] // 16 <= max_vertices:  # a WKB vertex takes 16 bytes at least
            return
        n = _vertices(table.column(column), max_vertices)
        if n is None or n > max_vertices:
            raise too_complex(n, max_vertices)
    except ValidationError:
        raise
    except Exception as exc:
        log.warning("could not measure Parquet upload %r: %r", name, exc)
        raise ValidationError(
            problem(
                "unreadable",
                f"Could not read {name!r} as Parquet: the file is damaged or is not "
                "Parquet. Export it again and upload that",
            )
        ) from None
