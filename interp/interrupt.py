"""Ctrl-C during long work: finish the step, write a checkpoint, then stop (exit 130 from the CLI)."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


@contextmanager
def deferred_interrupt():
    """Yield `requested()`: True once Ctrl-C was pressed. The loop checks it between steps, checkpoints and
    raises KeyboardInterrupt; a second Ctrl-C stops at once. Outside the main thread signals cannot be
    caught, so it never asks to stop there."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    hit = []

    def handler(signum, frame):
        if hit:
            raise KeyboardInterrupt
        hit.append(signum)

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(hit)
    finally:
        signal.signal(signal.SIGINT, old)
