"""Locks between runs: an exclusive lock that says what it waits for and who holds it.

The locks are ``flock`` locks, which the kernel releases when their holder
ends, however it ends: a lock held by a dead process is free at once.  The
holder writes who it is into the lock file, so that a waiting run can say so.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from .interrupt import check

REPEAT = 30.0  # seconds between two "still waiting" lines
POLL = 0.5


def _holder(lock: TextIO) -> str:
    lock.seek(0)
    words = lock.read().split(" ", 2)
    if len(words) < 3 or not words[0].isdigit():
        return "another process"
    pid, since, command = int(words[0]), words[1], words[2].strip()
    if pid == os.getpid():
        return f"this run (another of its targets), since {since}"
    return f"pid {pid} ({command}), since {since}"


@contextmanager
def held(path: Path, what: str, progress: Callable[[str], None]) -> Iterator[None]:
    """Hold the lock ``path`` for ``what``; while another holds it, say so every 30 s and honour interrupts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as lock:
        started = time.monotonic()
        said = -REPEAT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited - said >= REPEAT:
                    so_far = f" ({waited:.0f} s so far)" if waited >= 1 else ""
                    progress(f"waiting for {what}: it is locked by {_holder(lock)}{so_far}")
                    said = waited
                check()
                time.sleep(POLL)
        if time.monotonic() - started >= 1:
            progress(f"{what}: lock taken after {time.monotonic() - started:.0f} s")
        lock.seek(0)
        lock.truncate()
        since = datetime.now(UTC).isoformat(timespec="seconds")
        lock.write(f"{os.getpid()} {since} {' '.join(os.path.basename(a) for a in sys.argv)[:200]}\n")
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)
