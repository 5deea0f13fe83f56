"""Ctrl-C during long work: finish the step, write a checkpoint, then stop (exit 130 from the CLI). SIGTERM
counts the same: it is what torchrun sends its workers on Ctrl-C and what cluster schedulers send before they
stop a job."""

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
        if signum in hit:  # the same signal twice; Ctrl-C followed by torchrun's SIGTERM still checkpoints
            raise KeyboardInterrupt
        hit.append(signum)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(hit)
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)
