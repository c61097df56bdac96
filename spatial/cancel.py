"""Cooperative cancellation of long computations.

A caller that may give up (the web service at its timeout, or when its clients have gone) runs a
computation with a :class:`CancelToken`; the computation calls :func:`checkpoint` between blocks of
work, which raises :class:`Cancelled` once the token is cancelled or its deadline has passed. Outside
:func:`running` (the command line, tests) :func:`checkpoint` does nothing. The token lives in a context
variable, so each job (one thread, one copied context) sees only its own.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["Cancelled", "CancelToken", "checkpoint", "running"]


class Cancelled(BaseException):
    """The running job was cancelled. A BaseException, so a broad ``except Exception`` cannot swallow it."""


class CancelToken:
    def __init__(self, deadline: float | None = None):
        self.deadline = deadline  # time.monotonic() after which checkpoints raise
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "cancelled") -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        if self._event.is_set():
            return True
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.cancel("deadline")
            return True
        return False


_current: ContextVar[CancelToken | None] = ContextVar("segmap_cancel_token", default=None)


def checkpoint() -> None:
    """Raise :class:`Cancelled` if the running job's token was cancelled or its deadline passed."""
    token = _current.get()
    if token is not None and token.cancelled:
        raise Cancelled(token.reason)


@contextmanager
def running(token: CancelToken):
    """Run the enclosed work under ``token``; checks at entry, so a job cancelled while queued never starts."""
    reset = _current.set(token)
    try:
        checkpoint()
        yield token
    finally:
        _current.reset(reset)
