"""A request to stop training and come back later, made by a signal (submitit's warning before a Slurm time
limit or a preemption, SIGUSR2) and read by the training loop between batches: it finishes the epoch when that
takes at most ``GRACE_SECONDS`` (then saves a checkpoint), else stops at once (the run resumes from its last
checkpoint, at most ``--checkpoint-minutes`` of training old). Either way it raises ``Interrupted``, which is
not a failure: the Slurm task requeues its job and the run resumes there."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

GRACE_SECONDS = 30.0  # of the 90 s submitit's warning leaves before the limit; the rest writes the checkpoint

_requested = threading.Event()


class Interrupted(BaseException):  # noqa: N818  not an Exception: no run loop may record it as a failure
    """Training stopped because a signal asked it to (see the module docstring)."""


def request() -> None:
    _requested.set()


def requested() -> bool:
    return _requested.is_set()


@contextmanager
def on_signal(signum: int) -> Iterator[Callable[..., Any]]:
    """While the block runs, ``signum`` requests an interruption instead of doing what it did; yields the
    handler that was there (e.g. submitit's checkpoint-and-requeue), restored after the block."""
    before = signal.getsignal(signum)
    _requested.clear()
    signal.signal(signum, lambda number, frame: request())
    try:
        yield before
    finally:
        signal.signal(signum, before)
        _requested.clear()
