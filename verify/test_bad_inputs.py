"""Bad input met by a real run: a clear message, the right verdict, nothing lost.

Each test runs ``kprobe-docs`` as a user would, on a real target (the first
default one), against a cache, a results directory or a build directory of
its own where it damages something, and checks what the run says and leaves.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kprobe_docs.build import environment as buildenv
from kprobe_docs.paths import project_root
from kprobe_docs.sources.targets import find_mirror, load_catalog, system_sources
from kprobe_docs.store import results

ROOT = project_root(Path(__file__).parent)
CATALOG = load_catalog()
TARGET = CATALOG.default[0]


def _env() -> buildenv.BuildEnv:
    """The target's build environment in the real cache, made first if it is not there."""
    return buildenv.prepare(CATALOG.siblings(CATALOG.targets[TARGET]), find_mirror(system_sources()), print)


def _kd(*args: str, cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"KPROBE_DOCS_CACHE": str(cache)} if cache else {})}
    argv = [sys.executable, "-m", "kprobe_docs", *args]
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)


def _copy_cache(env: buildenv.BuildEnv, into: Path) -> Path:
    """A copy of the environment under another cache (hard links: seconds, not a gigabyte)."""
    copy = into / "buildenv" / env.directory.name
    copy.parent.mkdir(parents=True)
    subprocess.run(["cp", "-al", str(env.directory), str(copy)], check=True)
    return copy


def test_a_damaged_kernel_image_in_a_moved_cache_is_fetched_again_and_the_run_passes(tmp_path: Path) -> None:
    env = _env()
    copy = _copy_cache(env, tmp_path / "cache")
    image = copy / Path(env.kernels[TARGET].vmlinuz).relative_to(env.directory)
    truncated = image.read_bytes()[:4096]
    image.unlink()  # a new file: the original cache, hard-linked, stays intact
    image.write_bytes(truncated)
    out = tmp_path / "out"
    proc = _kd(
        "verify", "--targets", TARGET, "--samples", "kprobe_example", "--force",
        "--results", str(out / "results"), "--build-dir", str(out / "build"), cache=tmp_path / "cache",
    )  # fmt: skip
    assert f"{TARGET}: the cached kernel image {image} cannot be used (4096 bytes, " in proc.stderr
    assert "when fetched): fetching it again" in proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert image.stat().st_size == env.kernels[TARGET].image_size
    stamp = (copy / buildenv.STAMP).read_text()
    assert str(env.directory) not in stamp  # paths relative to the environment: the copy stands alone
    run = results.load_file(next((out / "results").glob("*.json")))
    assert [r.verdict for r in run.records if r.target == TARGET] == ["pass"]


def test_failures_are_listed_with_their_reason_and_log_after_the_table(tmp_path: Path) -> None:
    proc = _kd(
        "verify", "--targets", TARGET, "--fixtures", "--samples", "fault_build,fault_mismatch,kprobe_example",
        "--force", "--results", str(tmp_path / "results"), "--build-dir", str(tmp_path / "build"),
    )  # fmt: skip
    assert proc.returncode == 1
    why = proc.stdout.split("\nwhy:\n", 1)[1]
    assert f"  fault_build on {TARGET}: FAIL: build failed: " in why
    assert f"    log: {tmp_path / 'build' / TARGET / 'fault_build' / 'build.log'}" in why
    assert f"  fault_mismatch on {TARGET}: FAIL: expected log line not found: " in why
    assert f"    log: {tmp_path / 'build' / TARGET / 'console-kmod.log'}" in why
    assert "kprobe_example on" not in why
    ended = [
        d
        for d in (_env().root / "kd-build").glob(f"{TARGET}-*")
        if not Path(f"/proc/{d.name.rsplit('-', 1)[1]}").exists()
    ]
    assert ended == [], f"build directories of runs that ended, left in the chroot: {ended}"


def test_a_run_waiting_for_a_lock_says_who_holds_it_and_goes_on_once_it_is_free() -> None:
    env = _env()
    with env.directory.with_name(env.directory.name + ".lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()} 2026-12-02T00:00:00+00:00 the lock test\n")
        lock.flush()
        argv = [sys.executable, "-m", "kprobe_docs", "prepare", TARGET]
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert first.startswith(f"waiting for the build environment {env.directory.name}: it is locked by pid ")
        assert f"pid {os.getpid()} (the lock test), since 2026-12-02T00:00:00+00:00" in first
        time.sleep(1)
        assert proc.poll() is None
        fcntl.flock(lock, fcntl.LOCK_UN)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "lock taken after" in err


def test_an_interrupt_during_preparation_stops_mmdebstrap_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while a chroot is being made: mmdebstrap and its apt end within seconds; nothing half made is kept."""
    cache = tmp_path / "cache"
    env = {**os.environ, "KPROBE_DOCS_CACHE": str(cache)}
    argv = [sys.executable, "-m", "kprobe_docs", "prepare", "debian-bullseye-amd64"]
    proc = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "making the build chroot with mmdebstrap" in line:
            break
    deadline = time.monotonic() + 60
    while not _processes_under(cache) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_under(cache), "mmdebstrap never started"
    time.sleep(3)
    proc.send_signal(2)
    started = time.monotonic()
    assert proc.wait(timeout=15) == 130
    assert "SIGINT received: stopping guests and builds" in proc.stderr.read() + line
    assert time.monotonic() - started < 8
    assert _processes_under(cache) == []
    monkeypatch.setenv("KPROBE_DOCS_CACHE", str(cache))
    siblings = CATALOG.siblings(CATALOG.targets["debian-bullseye-amd64"])
    assert buildenv.cached(siblings, find_mirror(system_sources())) is None  # not taken for prepared: made again
    half_made = [p for p in (cache / "buildenv").glob("bullseye-*") if p.suffix != ".lock"]
    assert len(half_made) == 1
    buildenv.remove_tree(half_made[0])  # what the next run does first: nothing is left mounted in it
    assert not half_made[0].exists()


def _processes_under(path: Path) -> list[int]:
    """Processes whose command line names ``path`` (mmdebstrap and the apt and dpkg it runs)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(path) in text and int(cmdline.parent.name) != os.getpid():
            found.append(int(cmdline.parent.name))
    return found
