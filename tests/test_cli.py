"""The command line: bad arguments are refused with a reason, and a closed pipe is no error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kprobe_docs.runners.guests import Recorder, TargetRun
from kprobe_docs.sources.targets import load_catalog
from kprobe_docs.store import results

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kprobe_docs", *args], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jobs", "0"], "argument --jobs: 0 is less than 1"),
        (["--jobs", "two"], "argument --jobs: 'two' is not a whole number"),
        (["--samples", ""], "argument --samples: give at least one name"),
        (["--samples", ","], "argument --samples: give at least one name"),
        (["--targets", ""], "argument --target/--targets: give at least one name"),
        (["--targets", "debian-hurd-i386"], "unknown target 'debian-hurd-i386'"),
        (["--samples", "no_such_sample"], "no sample named 'no_such_sample'"),
    ],
)
def test_bad_verify_arguments_are_refused_before_any_work(args: list[str], message: str) -> None:
    proc = _cli("verify", *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_reader_that_stops_reading_is_no_error() -> None:
    proc = subprocess.run(
        f"{sys.executable} -m kprobe_docs targets | head -1", shell=True, capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("debian-")
    assert proc.stderr == ""


def test_results_that_cannot_be_written_go_to_a_fallback_that_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KPROBE_DOCS_CACHE", str(tmp_path / "cache"))
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the results directory should be")
    said: list[str] = []
    recorder = Recorder(blocked / "run.json", said.append)
    target = load_catalog().targets["debian-bookworm-amd64"]
    record = results.Record("demo", target.name, "kmod", "docs/p.md", "h", "pass")
    recorder.add(target, TargetRun([record], {}))
    fallback = tmp_path / "cache" / "unsaved-results" / "run.json"
    assert recorder.path == fallback
    assert said == [f"cannot write {blocked / 'run.json'} (File exists): this run's results go to {fallback}"]
    assert results.load_file(fallback).records == [record]


def test_a_results_directory_that_is_not_writable_is_refused_before_booting(tmp_path: Path) -> None:
    blocked = tmp_path / "ro"
    blocked.mkdir()
    # A read-only bind mount: root may write anywhere else, but not on a read-only file system.
    script = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"'
    argv = ["unshare", "--mount", "sh", "-c", script, "sh", str(blocked), sys.executable, "-m", "kprobe_docs"]
    proc = subprocess.run([*argv, "verify", "--results", str(blocked)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert f"the results directory {blocked} is not writable (Read-only file system)" in proc.stderr
    assert "booting" not in proc.stderr
