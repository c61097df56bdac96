"""The one in-process cache of the project: a bounded least-recently-used map, safe across threads.

Every in-memory cache (datasets in the registry, spatial weights per dataset, tile indexes and
attributes, OGC feature frames, encoded tiles in the ASGI layer) is one of these, so bounds and
eviction are the same everywhere. The cache shared by worker processes is on disk (``app.cache``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

from cachetools import LRUCache

_MISSING = object()


class LRU:
    """At most ``maxsize`` entries, or entries whose ``sizeof`` adds up to at most ``maxsize`` (e.g. bytes);
    the least recently used go first. An entry larger than the whole cache is not kept.

    ``get_or_make`` builds a missing value outside the lock (builds may take seconds and must not block
    other keys): two threads missing one key at the same moment may both build it, and the last one is kept.
    """

    def __init__(self, maxsize: int, sizeof: Callable[[Any], int] | None = None):
        self._data: LRUCache = LRUCache(maxsize, getsizeof=sizeof)
        self._lock = threading.Lock()  # cachetools' caches are not thread-safe

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            return self._data.get(key, default)

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            try:
                self._data[key] = value
            except ValueError:  # larger than maxsize on its own
                self._data.pop(key, None)

    def pop(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            return self._data.pop(key, default)

    def get_or_make(self, key: Hashable, make: Callable[[], Any]) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            value = make()
            self.put(key, value)
        return value

    def __len__(self) -> int:
        return len(self._data)

    @property
    def size(self) -> int:
        """The sum of the entries' sizes (their number without ``sizeof``)."""
        return self._data.currsize
