"""An interrupted verification keeps what it finished and leaves nothing broken behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kprobe_docs.paths import project_root
from kprobe_docs.sources.targets import load_catalog
from kprobe_docs.store import results

ROOT = project_root(Path(__file__).parent)


def _guests_of(pid: int) -> list[int]:
    """QEMU processes whose parent is ``pid``."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid) and fields.get("Name", "").startswith("qemu"):
            found.append(int(status.parent.name))
    return found


def _interrupt_when(
    marker: str, tmp_path: Path, samples: str, targets: list[str], jobs: int, signum: int = signal.SIGINT
) -> list[int]:
    """Run a verify, send ``signum`` once a line of its progress contains ``marker`` and a guest runs.

    Returns the guests that were running; asserts the run ended within 5 s, with the status that names the signal.
    """
    argv = [sys.executable, "-m", "kprobe_docs", "verify", "--force", "--samples", samples, "--fixtures"]
    argv += ["--targets", ",".join(targets), "--jobs", str(jobs), "--results", str(tmp_path / "results")]
    argv += ["--build-dir", str(tmp_path / "build")]
    proc = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    guests: list[int] = []
    deadline = time.monotonic() + 600
    for line in proc.stderr:
        if marker in line:
            while not guests and time.monotonic() < deadline:
                guests = _guests_of(proc.pid)
                time.sleep(0.05)
            break
    assert guests, f"no guest started after {marker!r}"
    time.sleep(2)
    proc.send_signal(signum)
    sent = time.monotonic()
    assert proc.wait(timeout=60) == 128 + signum
    assert _gone(guests)
    assert time.monotonic() - sent < 5
    return guests


def _gone(guests: list[int]) -> bool:
    def alive(pid: int) -> bool:
        try:
            return "zombie" not in Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return False

    return not any(alive(pid) for pid in guests)


def test_interrupt_during_second_target_keeps_first_and_kills_guest(tmp_path: Path) -> None:
    first, second = load_catalog().default[:2]
    guests = _interrupt_when(f"{second}: booting", tmp_path, "kprobe_example,kretprobe_example", [first, second], 1)
    files = list((tmp_path / "results").iterdir())
    assert [f.suffix for f in files] == [".json"], f"unexpected files: {files}"
    run = results.load_file(files[0])
    assert {r.target for r in run.records} == {first}
    assert {r.verdict for r in run.records} == {"pass"}
    assert _gone(guests)


def test_interrupt_in_parallel_stops_every_guest(tmp_path: Path) -> None:
    guests = _interrupt_when(": booting", tmp_path, "kprobe_example", list(load_catalog().default[:2]), 2)
    for path in (tmp_path / "results").glob("*"):
        assert path.suffix == ".json", f"left behind: {path}"
        results.load_file(path)
    assert _gone(guests)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_while_a_module_exit_hangs_ends_the_guest(tmp_path: Path, signum: int) -> None:
    """The guest is stuck in rmmod; the signal still ends QEMU at once, and no orphan is left."""
    target = load_catalog().default[0]
    guests = _interrupt_when(f"{target}: booting", tmp_path, "fault_exit_hang", [target], 1, signum)
    assert not [pid for pid in guests if Path(f"/proc/{pid}").exists()]
