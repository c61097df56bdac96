"""A worker's background read of a dataset version, made to disturb its tiles as little as the GIL allows.

While a worker reads a new version (app/tilesource.py), its event loop and tile threads still answer. Two
things of the read stalled them for hundreds of milliseconds (issue 18 item 3, measured with app/tilephases):

- full garbage collections, triggered by the read's allocations: a collection holds the GIL throughout, and it
  traversed the imports' ~360,000 objects and the version's 100,000 geometries (1.2-1.6 s at load 6). During
  the read, collections are off, and what lived before it is frozen (never traversed again);
- the GIL itself: a thread waiting for it gets it after the switch interval (5 ms by default) at best, and a
  request passes it between threads a dozen times. During the read, the interval is 1 ms.

Both are process-wide, so overlapping reads (several services in one process: tests) share one counter: the
first to start changes them, the last to end restores them.
"""

from __future__ import annotations

import gc
import sys
import threading
from contextlib import contextmanager

SWITCH_S = 0.001
_lock = threading.Lock()
_state: dict = {"readers": 0, "gc": True, "switch": 0.005}


@contextmanager
def quiet_read():
    with _lock:
        if _state["readers"] == 0:
            _state.update(gc=gc.isenabled(), switch=sys.getswitchinterval())
            gc.disable()
            sys.setswitchinterval(min(SWITCH_S, _state["switch"]))
        _state["readers"] += 1
        gc.freeze()  # what lives now is never traversed again; the read's objects are frozen after it too
    try:
        yield
    finally:
        with _lock:
            _state["readers"] -= 1
            if _state["readers"] == 0:
                # Frozen before collections resume: else the first allocation after gc.enable() collects the
                # youngest generation, now holding every object of the read (a million geometries at 1M areas).
                gc.freeze()
                sys.setswitchinterval(_state["switch"])
                if _state["gc"]:
                    gc.enable()
