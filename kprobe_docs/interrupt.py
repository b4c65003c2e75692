"""Interrupts: SIGINT, SIGTERM and SIGHUP stop a run alike, and every child process with it.

The main thread receives the signal as ``Interrupted`` (a KeyboardInterrupt
that knows its signal).  Worker threads cannot receive signals, so ``CANCEL``
tells them: every wait of theirs on a child process, a guest or a lock checks
it at least once a second, and a child is always ended with its whole
process group (mmdebstrap's apt and dpkg, make's compilers, QEMU).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import IO

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
CANCEL = threading.Event()  # set once a signal arrived: workers stop at their next check
_received: list[int] = []
GRACE = 3.0  # seconds a process group gets after SIGTERM before SIGKILL (mmdebstrap unmounts)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; ``status`` is the exit status that says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def status(self) -> int:
        return 128 + self.signum


def signum_of(exc: KeyboardInterrupt) -> int:
    return exc.signum if isinstance(exc, Interrupted) else int(signal.SIGINT)


def _handle(signum: int, frame: FrameType | None) -> None:
    first = not CANCEL.is_set()
    _received.append(signum)
    CANCEL.set()
    if first:  # os.write: a handler must not re-enter a buffered stream the main thread may be writing
        name = signal.Signals(signum).name
        os.write(2, f"kprobe-docs: {name} received: stopping guests and builds; finished targets are kept\n".encode())
    raise Interrupted(signum)


@contextmanager
def handled() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise ``Interrupted`` in the main thread while inside; the old handlers after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handle) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def check() -> None:
    """Raise ``Interrupted`` in a worker once the run was interrupted."""
    if CANCEL.is_set():
        raise Interrupted(_received[-1] if _received else signal.SIGINT)


def end_group(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """End a child started with ``start_new_session`` and everything it started: TERM, then KILL."""
    for sig, wait in ((signal.SIGTERM, GRACE), (signal.SIGKILL, None)):
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run(
    argv: list[str], timeout: float | None = None, stdin: int | IO[bytes] | None = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(capture_output=True, text=True)`` in a process group of its own.

    The group is ended on an interrupt, on ``timeout`` (then ``TimeoutExpired``
    is raised) and on any exception.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    proc = subprocess.Popen(
        argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        while True:
            try:
                out, err = proc.communicate(timeout=0.5)
                return subprocess.CompletedProcess(argv, proc.returncode, out, err)
            except subprocess.TimeoutExpired:
                check()
                if deadline is not None and time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(argv, timeout or 0) from None
    except BaseException:
        end_group(proc)
        raise


def stream(argv: list[str], on_line: Callable[[str], None]) -> int:
    """Run ``argv`` (stderr joined to stdout), passing each line of output to ``on_line``; its exit status."""
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    pending = b""
    try:
        while True:
            check()
            if not selector.select(timeout=1.0):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                on_line(line.decode("utf-8", "replace") + "\n")
        if pending:
            on_line(pending.decode("utf-8", "replace") + "\n")
        return proc.wait()
    except BaseException:
        end_group(proc)
        raise
    finally:
        selector.close()
        proc.stdout.close()
