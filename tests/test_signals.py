"""Interrupts end every child with its whole process group, and say which signal stopped the run."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kprobe_docs import interrupt


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    interrupt.CANCEL.clear()
    yield
    interrupt.CANCEL.clear()
    interrupt._received.clear()


def _alive(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def _gone_within(pids: list[int], seconds: float) -> bool:
    """Whether every process in ``pids`` has ended within ``seconds`` (a signalled process takes a moment)."""
    deadline = time.monotonic() + seconds
    while any(map(_alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(map(_alive, pids))


def _wait_for(path: Path) -> list[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().split()) == 2:
            return [int(pid) for pid in path.read_text().split()]
        time.sleep(0.05)
    raise AssertionError(f"{path} never listed both pids")


# A child that starts a grandchild, both of which ignore nothing and would sleep for 5 minutes.
SCRIPT = 'sleep 300 & echo $! $$ > "$1"; wait'


@pytest.mark.parametrize("how", ["run", "stream"])
def test_a_cancel_ends_the_child_and_its_children_within_5_s(tmp_path: Path, how: str) -> None:
    pids = tmp_path / "pids"
    argv = ["sh", "-c", SCRIPT, "sh", str(pids)]
    failure: list[BaseException] = []

    def work() -> None:
        try:
            if how == "run":
                interrupt.run(argv)
            else:
                interrupt.stream(argv, lambda line: None)
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    sleeper, shell = _wait_for(pids)
    interrupt.CANCEL.set()
    started = time.monotonic()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert time.monotonic() - started < 5
    assert isinstance(failure[0], interrupt.Interrupted)
    assert _gone_within([sleeper, shell], 5 - (time.monotonic() - started))


def test_a_timeout_ends_the_group_too(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    with pytest.raises(subprocess.TimeoutExpired):
        interrupt.run(["sh", "-c", SCRIPT, "sh", str(pids)], timeout=3)
    assert _gone_within(_wait_for(pids), 5)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_each_signal_becomes_an_interrupt_that_names_it(signum: int, capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(interrupt.Interrupted) as raised, interrupt.handled():
        os.kill(os.getpid(), signum)
        time.sleep(5)
    assert raised.value.signum == signum
    assert raised.value.status == 128 + signum
    assert interrupt.CANCEL.is_set()
    assert f"{signal.Signals(signum).name} received: stopping guests and builds" in capfd.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the old handlers are back
