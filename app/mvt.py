"""A numpy-vectorised Mapbox Vector Tile (spec v2.1) encoder for one layer of polygon features.

Replaces ``mapbox_vector_tile.encode`` on the tile path: geometry commands, property tags and the
protobuf framing are built for all features at once with array operations, never a Python loop per
feature or ring. Geometries must already be in tile units (integers, y down), as ``app.tiles`` makes them.
"""

from __future__ import annotations

import numpy as np
import shapely

_U64 = np.uint64


def _scalar_varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _scalar_varint(len(payload)) + payload


def _varint(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Protobuf varints of uint64 values: (concatenated bytes, byte length of each value)."""
    v = np.asarray(v).astype(_U64, copy=False)
    top = int(v.max(initial=0))
    if top < 0x80:
        return v.astype(np.uint8), np.ones(len(v), np.int64)
    if top < 2**32:  # narrower integers are faster to shift, mask and compare
        v = v.astype(np.uint32)
    t = v.dtype.type
    nbytes = (top.bit_length() + 6) // 7
    lens = np.ones(len(v), np.int64)
    for g in range(1, nbytes):
        lens += v >= t(1 << (7 * g))
    starts = np.cumsum(lens) - lens
    out = np.empty(int(starts[-1] + lens[-1]), np.uint8)
    out[starts] = (v & t(0x7F)).astype(np.uint8) | ((lens > 1).astype(np.uint8) << 7)
    idx = np.flatnonzero(lens > 1)  # the multi-byte values get their later bytes one group at a time
    for g in range(1, nbytes):
        idx = idx[lens[idx] > g]
        w = (v[idx] >> t(7 * g)) & t(0x7F)
        out[starts[idx] + g] = w.astype(np.uint8) | ((lens[idx] > g + 1).astype(np.uint8) << 7)
    return out, lens


def _per_item(lens: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Sum of consecutive runs of ``lens``, run sizes ``counts`` (a per-item byte total)."""
    cs = np.concatenate(([0], np.cumsum(lens)))
    ends = np.cumsum(counts)
    return cs[ends] - cs[ends - counts]


def _const(byte: int, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    present = present.astype(np.int64)
    return np.full(int(present.sum()), byte, np.uint8), present


def _concat(n: int, parts) -> tuple[np.ndarray, np.ndarray]:
    """Per item i, the concatenation of each part's bytes for i; a part is (bytes, byte count per item)."""
    lens = np.zeros(n, np.int64)
    for _, ln in parts:
        lens += ln
    off = np.cumsum(lens) - lens
    out = np.empty(int(lens.sum()), np.uint8)
    for data, ln in parts:
        if len(data) == n and ln.max(initial=1) == 1:  # exactly one byte per item
            out[off] = data
        else:  # byte b of the part goes to off[item] + (b - first byte of item in the part)
            out[np.repeat(off - (np.cumsum(ln) - ln), ln) + np.arange(len(data))] = data
        off += ln
    return out, lens


def _masked_varint(v: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Varints of the values of the present items; byte count 0 for the others."""
    data, lens = _varint(v)
    full = np.zeros(len(present), np.int64)
    full[present] = lens
    return data, full


def _zigzag(d: np.ndarray) -> np.ndarray:
    d = d.astype(np.int64)
    return ((d << 1) ^ (d >> 63)).view(_U64)


def _geometry(geoms: np.ndarray):
    """Command integers of each polygonal geometry: (uint64 stream, count per geometry)."""
    n = len(geoms)
    typ, coords, offsets = shapely.to_ragged_array(geoms, include_z=False, include_m=False)
    if typ == shapely.GeometryType.POLYGON:
        ring_off, part_off = offsets
        geom_off = np.arange(n + 1)
    else:
        ring_off, part_off, geom_off = offsets
    x, y = np.rint(coords.T).astype(np.int64)
    nrings = len(ring_off) - 1
    ring_of = np.repeat(np.arange(nrings), np.diff(ring_off))
    x, y, ring_of, rings = _open_rings(x, y, ring_of, nrings)
    area2 = _ring_area2(x, y, rings, nrings)
    exterior, ring_keep, feat_of_ring = _ring_roles(part_off, geom_off, rings[0], area2, n)
    # Spec 4.3.4.4: exterior rings have positive surveyor's area in y-down tile coordinates,
    # interior rings negative. Reverse the others in place.
    rev = np.where(exterior, area2 < 0, area2 > 0)
    if rev.any():
        cnt, start = rings[0], rings[1]
        idx, r = np.arange(len(x)), ring_of
        src = np.where(rev[r], 2 * start[r] + cnt[r] - 1 - idx, idx)
        x, y = x[src], y[src]
    if not ring_keep.all():
        pk = ring_keep[ring_of]
        x, y, ring_of = x[pk], y[pk], ring_of[pk]
    return _commands(x, y, ring_of, ring_keep, rings[0], feat_of_ring, n)


def _ring_index(ring_of: np.ndarray, nrings: int):
    """(points per ring, first point of each ring, non-empty rings, last point of each non-empty ring)."""
    cnt = np.bincount(ring_of, minlength=nrings)
    start = np.cumsum(cnt) - cnt
    ne = cnt > 0
    return cnt, start, ne, start[ne] + cnt[ne] - 1


def _open_rings(x: np.ndarray, y: np.ndarray, ring_of: np.ndarray, nrings: int):
    """Rings without consecutive duplicates (snapping makes them) nor their closing point, and their index."""
    keep = np.ones(len(x), bool)
    keep[1:] = (x[1:] != x[:-1]) | (y[1:] != y[:-1]) | (ring_of[1:] != ring_of[:-1])
    keep[:-1] &= ring_of[1:] == ring_of[:-1]
    keep[-1:] = False
    if not keep.all():
        x, y, ring_of = x[keep], y[keep], ring_of[keep]
    # A ring whose closing point was repeated (..., C, A, A) still ends on a copy of its first point.
    cnt, start, ne, tail = rings = _ring_index(ring_of, nrings)
    dup = (x[tail] == x[start[ne]]) & (y[tail] == y[start[ne]]) & (cnt[ne] > 1)
    if dup.any():
        drop = np.ones(len(x), bool)
        drop[tail[dup]] = False
        x, y, ring_of = x[drop], y[drop], ring_of[drop]
        rings = _ring_index(ring_of, nrings)
    return x, y, ring_of, rings


def _ring_area2(x: np.ndarray, y: np.ndarray, rings, nrings: int) -> np.ndarray:
    """Twice each ring's signed (surveyor's) area, exact in integers."""
    _, start, ne, tail = rings
    nxt = np.arange(len(x)) + 1
    nxt[tail] = start[ne]
    cross = x * y[nxt] - x[nxt] * y
    area2 = np.zeros(nrings, np.int64)
    if len(x):
        area2[ne] = np.add.reduceat(cross, start[ne])
    return area2


def _ring_roles(part_off: np.ndarray, geom_off: np.ndarray, cnt: np.ndarray, area2: np.ndarray, n: int):
    """(exterior ring?, ring kept?, feature of each ring). A part goes with its exterior ring."""
    nrings, nparts = len(cnt), len(part_off) - 1
    # Zero-area rings (collapsed, or fewer than 3 points) have no winding a decoder could classify.
    ring_ok = (cnt >= 3) & (area2 != 0)
    part_of_ring = np.repeat(np.arange(nparts), np.diff(part_off))
    exterior = np.zeros(nrings, bool)
    part_nonempty = np.diff(part_off) > 0
    exterior[part_off[:-1][part_nonempty]] = True
    part_ok = np.zeros(nparts, bool)
    part_ok[part_nonempty] = ring_ok[part_off[:-1][part_nonempty]]
    ring_keep = ring_ok & part_ok[part_of_ring]
    feat_of_ring = np.repeat(np.arange(n), np.diff(geom_off))[part_of_ring]
    return exterior, ring_keep, feat_of_ring


def _commands(x, y, ring_of, ring_keep, cnt, feat_of_ring, n: int):
    """MoveTo, LineTo and ClosePath per kept ring, with zigzag deltas; (stream, count per geometry)."""
    kept = np.flatnonzero(ring_keep)
    k = (np.cumsum(ring_keep) - 1)[ring_of]  # kept-ring number of each point
    m = cnt[kept]
    pfeat = feat_of_ring[ring_of]
    first = np.ones(len(x), bool)  # the cursor restarts at (0, 0) per feature
    first[1:] = pfeat[1:] != pfeat[:-1]
    dx, dy = np.diff(x, prepend=0), np.diff(y, prepend=0)
    dx[first], dy[first] = x[first], y[first]

    size = 2 * m + 3  # MoveTo(1) x y LineTo(m-1) 2(m-1) params ClosePath
    rstart = np.cumsum(size) - size
    out = np.empty(int(size.sum()), _U64)
    out[rstart] = 9
    out[rstart + 3] = (2 | ((m - 1) << 3)).astype(_U64)
    out[rstart + size - 1] = 15
    jj = np.arange(len(x)) - (np.cumsum(m) - m)[k]
    px = rstart[k] + 2 * jj + 2 - (jj == 0)
    out[px] = _zigzag(dx)
    out[px + 1] = _zigzag(dy)
    return out, np.bincount(feat_of_ring[kept], weights=size, minlength=n).astype(np.int64)


def _values(col: np.ndarray):
    """(present mask, value index per present row, number of values, their Value messages) of a column."""
    col = np.asarray(col)
    if col.dtype == object:
        missing = (col == None) | (col != col)  # noqa: E711 -- elementwise None / NaN test
        vals = col[~missing]
        if len(vals) and isinstance(vals[0], str):
            vals = vals.astype(str)
        elif len(vals) and isinstance(vals[0], (bool, np.bool_)):
            vals = vals.astype(bool)
        else:
            vals = vals.astype(np.float64)
    elif col.dtype.kind == "f":
        missing = np.isnan(col)
        vals = col[~missing]
    else:
        missing = np.zeros(len(col), bool)
        vals = col
    if vals.dtype.kind in "iu" and len(vals) and int(vals.max()) - int(vals.min()) <= 4 * len(vals):
        # dense integers: unique by a presence table, no sort
        lo = vals.min()
        seen = np.zeros(int(vals.max()) - int(lo) + 1, bool)
        seen[vals - lo] = True
        uniq = np.flatnonzero(seen).astype(vals.dtype) + lo
        inv = (np.cumsum(seen) - 1)[vals - lo]
    else:
        uniq, inv = np.unique(vals, return_inverse=True)
    nu = len(uniq)
    if (
        uniq.dtype.kind == "f"
        and np.isfinite(uniq).all()
        and (uniq == np.round(uniq)).all()
        and (np.abs(uniq) < 2**63).all()
    ):
        uniq = uniq.astype(np.int64)
    kind = uniq.dtype.kind
    if kind == "U":
        data = np.frombuffer("".join(uniq.tolist()).encode("utf-8"), np.uint8)
        blen = np.strings.str_len(uniq).astype(np.int64)
        if len(data) != blen.sum():  # non-ASCII: UTF-8 bytes per code point from the UCS-4 array
            cp = uniq.view(np.uint32).reshape(nu, -1)
            blen += ((cp >= 0x80).astype(np.int64) + (cp >= 0x800) + (cp >= 0x10000)).sum(axis=1)
        ln = _varint(blen)
        inner = _concat(nu, [_const(0x0A, np.ones(nu)), ln, (data, blen)])
    elif kind == "b":
        inner = _concat(nu, [_const(0x38, np.ones(nu)), (uniq.astype(np.uint8), np.ones(nu, np.int64))])
    elif kind in "iu":
        if kind == "i" and (uniq < 0).any():
            inner = _concat(nu, [_const(0x30, np.ones(nu)), _varint(_zigzag(uniq))])
        else:
            inner = _concat(nu, [_const(0x28, np.ones(nu)), _varint(uniq.astype(_U64))])
    else:
        raw = uniq.astype("<f8").view(np.uint8)
        inner = _concat(nu, [_const(0x19, np.ones(nu)), (raw, np.full(nu, 8, np.int64))])
    msgs, _ = _concat(nu, [_const(0x22, np.ones(nu)), _varint(inner[1]), inner])
    return ~missing, inv.reshape(-1), nu, msgs


def _tags(columns: dict[str, np.ndarray], sel: np.ndarray):
    """(Feature.tags parts, Layer.keys, Layer.values) of the selected rows' properties."""
    cols = [(name, *_values(np.asarray(col)[sel])) for name, col in columns.items()]
    cols = [c for c in cols if c[3] > 0]  # a column with no value anywhere gets no key
    # Low-cardinality columns first in the values table: their (frequent) indices get short varints.
    order = sorted(range(len(cols)), key=lambda c: cols[c][3])
    base = np.zeros(len(cols), np.int64)
    base[order] = np.cumsum([0] + [cols[c][3] for c in order])[:-1]
    # Feature.tags, packed: per column, the key index then the value index where the value is present.
    tag_parts = []
    for c, (_, ok, inv, _, _) in enumerate(cols):
        tag_parts += [_masked_varint(np.full(len(inv), c), ok), _masked_varint(inv + base[c], ok)]
    keys = [_field(0x1A, c[0].encode()) for c in cols]
    values = [cols[c][4].tobytes() for c in order]
    return tag_parts, keys, values


def _square_commands(x0: np.ndarray, y0: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The commands :func:`_geometry` makes of ``shapely.box(x0, y0, x0 + side, y0 + side)`` (integers, side > 0),
    without making the boxes: its ring (x1, y0), (x1, y1), (x0, y1), (x0, y0) has a positive area, so it is kept as
    it is. A zoomed-out tile of a million areas is some 16,000 such cells; GEOS boxes were half its time."""
    n = len(x0)
    x1 = np.asarray(x0, np.int64) + side
    out = np.empty((n, 11), _U64)
    out[:, 0], out[:, 3], out[:, 10] = 9, 2 | (3 << 3), 15  # MoveTo(1), LineTo(3), ClosePath
    out[:, 1], out[:, 2] = _zigzag(x1), _zigzag(np.asarray(y0, np.int64))
    out[:, 4:10] = _zigzag(np.array([0, side, -side, 0, 0, -side]))
    return out.reshape(-1), np.full(n, 11, np.int64)


def encode_polygons(
    geoms: np.ndarray,
    columns: dict[str, np.ndarray],
    *,
    layer: str = "areas",
    extent: int = 4096,
    squares: tuple[np.ndarray, np.ndarray, int] | None = None,
) -> bytes:
    """geoms: 1-D object array of shapely Polygon/MultiPolygon in tile units (integers, y down); empty or
    non-polygonal entries are skipped (with their rows). columns: property name -> 1-D array aligned with
    geoms (numeric float/int arrays, bool, or object arrays of str). NaN (floats) or None (object) means:
    omit that property for that feature (MVT has no null). ``squares``: (x0, y0, side) of axis-aligned squares in
    tile units, features after ``geoms`` (columns cover both), encoded byte for byte as their ``shapely.box`` would
    be. Returns the encoded tile bytes (b"" when no feature remains)."""
    geoms = np.asarray(geoms, dtype=object)
    sel = np.flatnonzero(np.isin(shapely.get_type_id(geoms), (3, 6)) & ~shapely.is_empty(geoms))
    cmds, gcount = np.empty(0, _U64), np.empty(0, np.int64)
    if len(sel):
        cmds, gcount = _geometry(geoms if len(sel) == len(geoms) else geoms[sel])
        has = gcount > 0
        sel, gcount = sel[has], gcount[has]
    if squares is not None and len(squares[0]):
        if not squares[2] > 0:
            raise ValueError("squares need a positive side")
        square_cmds, square_count = _square_commands(squares[0], squares[1], int(squares[2]))
        cmds, gcount = np.concatenate([cmds, square_cmds]), np.concatenate([gcount, square_count])
        sel = np.concatenate([sel, len(geoms) + np.arange(len(squares[0]))])
    nf = len(sel)
    if nf == 0:
        return b""

    tag_parts, keys, values = _tags(columns, sel)
    tag_bytes = sum((ln for _, ln in tag_parts), np.zeros(nf, np.int64))
    has_tags = tag_bytes > 0
    tlen_data, tlen_lens = _masked_varint(tag_bytes[has_tags], has_tags)

    geom_data, geom_lens = _varint(cmds)
    geom_bytes = _per_item(geom_lens, gcount)
    one = np.ones(nf, bool)
    parts = [
        _const(0x08, one),
        _varint(sel.astype(_U64)),
        _const(0x12, has_tags),
        (tlen_data, tlen_lens),
        *tag_parts,
        _const(0x18, one),
        _const(3, one),
        _const(0x22, one),
        _varint(geom_bytes),
        (geom_data, geom_bytes),
    ]
    feat_bytes = sum(ln for _, ln in parts)
    features, _ = _concat(nf, [_const(0x12, one), _varint(feat_bytes), *parts])  # Layer.features, framed

    body = [
        _field(0x0A, layer.encode()),
        features.data,
        *keys,
        *values,
        b"\x28" + _scalar_varint(extent),
        b"\x78\x02",
    ]  # name, features, keys, values, extent, version
    return b"".join([b"\x1a", _scalar_varint(sum(len(b) for b in body)), *body])  # Tile.layers
