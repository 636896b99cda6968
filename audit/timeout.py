"""A deadline for calls into the audited target: a target that hangs is reported, not waited on.

In the main thread of a POSIX process the deadline is ``signal.setitimer(ITIMER_REAL)``: the
alarm raises `TargetTimeout` inside the target's Python code (or interrupts a blocking
call that checks for signals). Elsewhere (another thread, Windows) no deadline is set and the
call runs to completion; the report says so.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

__all__ = ["TargetTimeout", "deadline", "deadline_supported"]


class TargetTimeout(Exception):
    """The target did not return within the deadline."""


def deadline_supported() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def deadline(seconds: float | None):
    """Raise `TargetTimeout` in the body after ``seconds`` (``None``: no deadline)."""
    if not seconds or not deadline_supported():
        yield
        return

    def _alarm(signum, frame):
        raise TargetTimeout(f"no return within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
