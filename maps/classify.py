"""mapclassify, imported without compiling what segmap never calls.

mapclassify compiles its Fisher-Jenks kernel with numba when it is imported (an eager signature): 2.5-5 s of CPU in
every process that draws a map, each server worker's start included, although segmap's schemes (quantiles,
natural breaks by k-means, equal interval) never call it. Imported here with eager signatures turned into lazy
compilation, that kernel compiles on its first call instead, if one ever comes.
"""

from __future__ import annotations

import numba


def _import_lazily():
    eager = numba.njit

    def lazy(*args, **kwargs):
        return eager(**kwargs) if args and isinstance(args[0], str) else eager(*args, **kwargs)

    numba.njit = lazy
    try:
        import mapclassify
    finally:
        numba.njit = eager
    return mapclassify


mapclassify = _import_lazily()
