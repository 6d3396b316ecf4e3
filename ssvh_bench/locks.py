"""Lock files: one process at a time works on a run folder or builds a stage-1 artefact.

A lock is a small JSON file (pid, host, start time, and the Slurm job id when there is one) created with
``O_CREAT | O_EXCL``, which is atomic on local file systems and on NFS v3+, so of two processes only one
creates it. It is removed when the holder is done. A holder that was killed leaves its lock behind: a lock
whose pid is dead on this host is stale and is taken over; a lock from another host cannot be checked from
here and counts as held (the launchers check such locks against the Slurm job that holds them).

Under a held lock nobody else writes the locked folder, so temporary files found there (``.*.tmp``, left by a
killed process between writing and renaming) are stale and ``remove_temporaries`` deletes them.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .slurm_jobs import current_job_id

POLL_S = 0.2
# a lock file that is still empty this long after its creation was left by a process killed between
# creating and writing it (the two happen microseconds apart)
EMPTY_LOCK_GRACE_S = 30.0


class Lock:
    """A held lock; ``release`` (or leaving the ``with`` block) removes the file."""

    def __init__(self, path: Path, info: dict[str, Any]) -> None:
        self.path, self.info = path, info

    def release(self) -> None:
        if read_holder(self.path) == self.info:  # never remove a lock that someone took over from us
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def holder_info() -> dict[str, Any]:
    """What a lock records about the process that holds it."""
    info: dict[str, Any] = {"pid": os.getpid(), "host": platform.node(),
                            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if current_job_id() is not None:
        info["slurm_job_id"] = current_job_id()
    return info


def read_holder(path: Path) -> dict[str, Any] | None:
    """The holder recorded in the lock file at ``path``; None when there is no lock; ``{}`` for a lock that
    is being written or is unreadable."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        info = json.loads(text)
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def holder_alive(path: Path, info: dict[str, Any]) -> bool:
    """False only when the holder is certainly gone: a dead pid on this host, or a lock left empty."""
    if not info:
        try:
            return time.time() - Path(path).stat().st_mtime < EMPTY_LOCK_GRACE_S
        except FileNotFoundError:
            return False
    if info.get("host") != platform.node():
        return True
    return pid_alive(int(info.get("pid", -1)))


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def try_acquire(path: Path) -> Lock | None:
    """Take the lock at ``path`` (taking over a stale one); None while a live process holds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = holder_info()
    for _ in range(3):  # a stale lock removed, then one more try
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _remove_if_stale(path):
                return None
            continue
        try:
            os.write(handle, json.dumps(info).encode())
        finally:
            os.close(handle)
        return Lock(path, info)
    return None


def acquire(path: Path, *, timeout: float | None = None) -> Lock | None:
    """Wait until the lock at ``path`` is ours (None after ``timeout`` seconds, if given)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        lock = try_acquire(path)
        if lock is not None or (deadline is not None and time.monotonic() > deadline):
            return lock
        time.sleep(POLL_S)


def _remove_if_stale(path: Path) -> bool:
    """Remove the lock at ``path`` if its holder is gone; True when the lock is gone (removed or released).

    The check and the removal happen under an flock of the folder, so two processes taking over the same
    stale lock cannot both succeed: the second one re-reads the lock and finds the first one's, alive.
    """
    with _folder_flock(path.parent):
        info = read_holder(path)
        if info is None:
            return True
        if holder_alive(path, info):
            return False
        path.unlink(missing_ok=True)
        return True


@contextmanager
def _folder_flock(folder: Path) -> Iterator[None]:
    handle = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError as error:  # file systems without flock on folders: the O_EXCL create still decides
            if error.errno not in (errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP):
                raise
        yield
    finally:
        os.close(handle)  # closing releases the flock


def remove_temporaries(folder: Path, pattern: str = ".*.tmp") -> list[Path]:
    """Delete the temporary files and folders matching ``pattern`` under ``folder`` (recursively); call only
    while holding the lock that guards ``folder``. Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = sorted(folder.rglob(pattern))
    for stale in removed:
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    return removed
