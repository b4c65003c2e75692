"""An interrupted verification keeps what it finished and leaves nothing broken behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kprobe_docs import results
from kprobe_docs.paths import project_root
from kprobe_docs.targets import load_catalog

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


def test_interrupt_during_second_target_keeps_first_and_kills_guest(tmp_path: Path) -> None:
    first, second = load_catalog().default[:2]
    argv = [sys.executable, "-m", "kprobe_docs", "verify", "--force", "--samples", "kprobe_example,kretprobe_example"]
    argv += ["--targets", f"{first},{second}", "--jobs", "1", "--results", str(tmp_path / "results")]
    argv += ["--build-dir", str(tmp_path / "build")]
    proc = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    guests: list[int] = []
    deadline = time.monotonic() + 600
    for line in proc.stderr:
        if line.startswith(f"{second}: booting"):
            while not guests and time.monotonic() < deadline:
                guests = _guests_of(proc.pid)
                time.sleep(0.05)
            break
    assert guests, "the second target's guest never started"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    files = list((tmp_path / "results").iterdir())
    assert [f.suffix for f in files] == [".json"], f"unexpected files: {files}"
    run = results.load_file(files[0])
    assert {r.target for r in run.records} == {first}
    assert {r.verdict for r in run.records} == {"pass"}
    for pid in guests:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_interrupt_in_parallel_stops_every_guest(tmp_path: Path) -> None:
    targets = ",".join(load_catalog().default[:2])
    argv = [sys.executable, "-m", "kprobe_docs", "verify", "--force", "--samples", "kprobe_example"]
    argv += ["--targets", targets, "--jobs", "2", "--results", str(tmp_path / "results")]
    argv += ["--build-dir", str(tmp_path / "build")]
    proc = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    guests: list[int] = []
    deadline = time.monotonic() + 600
    for line in proc.stderr:
        if ": booting" in line:
            while not guests and time.monotonic() < deadline:
                guests = _guests_of(proc.pid)
                time.sleep(0.05)
            break
    assert guests, "no guest started"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    for path in (tmp_path / "results").glob("*"):
        assert path.suffix == ".json", f"left behind: {path}"
        results.load_file(path)
    for pid in guests:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in Path(f"/proc/{pid}/status").read_text()
