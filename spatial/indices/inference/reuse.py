"""Seeded calibration work kept for reuse within a process.

The simulations along λ depend only on the data, the index, the seed and the number of draws (they have
their own stream), so the same dataset calibrated again gives the same curves: a trend's change rows
calibrate every date a second time (and the baseline once per later date), a comparison repeats the level
row's calibration. Kept here, the second time costs nothing and the numbers are the same bit for bit.
Nothing is kept without a seed (fresh entropy is not meant to repeat).
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

SIZE = 32  # entries; each holds a few thousand floats
ENABLED = True  # benchmarks that repeat one seeded call set it False (or clear()) to time the work, not the reuse
_store: OrderedDict = OrderedDict()
_lock = threading.Lock()


def _freeze(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value), tuple(_freeze(getattr(value, f.name)) for f in dataclasses.fields(value)))
    hash(value)  # TypeError for what cannot be a key (arrays of a spatial index's set-up)
    return value


def evaluator_key(evaluate: Callable):
    """What identifies an evaluator: its code and what its closure holds (an aspatial index made again for
    another call is the same), else the object itself (a spatial index's set-up is per geometry)."""
    code = getattr(evaluate, "__code__", None)
    try:
        cells = tuple(_freeze(c.cell_contents) for c in (getattr(evaluate, "__closure__", None) or ()))
        if code is None:
            raise TypeError
        return ("code", code, cells)
    except (TypeError, ValueError):
        return ("object", id(evaluate))


def digest(arrays: Sequence) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()


def cached(key, evaluate: Callable, compute: Callable):
    """``compute()``, or what it gave for ``key`` before. ``key`` None: no reuse. Entries made with an
    evaluator known only by its identity are dropped when it is garbage (its id may be given again)."""
    if key is None or not ENABLED:
        return compute()
    ev = evaluator_key(evaluate)
    full = (ev, key)
    with _lock:
        hit = _store.get(full)
        if hit is not None:
            _store.move_to_end(full)
            return hit
    value = compute()
    if ev[0] == "object":
        try:
            weakref.finalize(evaluate, _drop, full)
        except TypeError:  # cannot tell when it is gone: keep nothing
            return value
    with _lock:
        _store[full] = value
        while len(_store) > SIZE:
            _store.popitem(last=False)
    return value


def _drop(full) -> None:
    with _lock:
        _store.pop(full, None)


def clear() -> None:
    with _lock:
        _store.clear()
