"""A run that waits for a lock says what it waits for and who holds it; a dead holder frees it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from kprobe_docs import locks

HOLDER = """
import sys, time
from pathlib import Path
from kprobe_docs import locks
with locks.held(Path(sys.argv[1]), "the test lock", print):
    Path(sys.argv[2]).touch()
    time.sleep(300)
"""


def test_a_waiting_run_names_the_holder_and_gets_the_lock_when_it_dies(tmp_path: Path) -> None:
    lock, ready = tmp_path / "env.lock", tmp_path / "ready"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(ready)])
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        said: list[str] = []
        taken = threading.Event()

        def wait() -> None:
            with locks.held(lock, "the build environment demo", said.append):
                taken.set()

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(1.5)
        assert not taken.is_set()
        assert said and said[0].startswith(
            f"waiting for the build environment demo: it is locked by pid {holder.pid} ("
        )
        assert "since 20" in said[0]
        holder.kill()  # SIGKILL: no chance to unlock; the kernel frees an flock with its holder
        waiter.join(timeout=5)
        assert taken.is_set()
        assert said[-1].startswith("the build environment demo: lock taken after ")
    finally:
        holder.kill()
        holder.wait()


def test_an_uncontended_lock_says_nothing(tmp_path: Path) -> None:
    said: list[str] = []
    with locks.held(tmp_path / "x.lock", "x", said.append):
        pass
    assert said == []
