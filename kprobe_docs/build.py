"""Build stage: compile a sample out of tree against a target's headers.

The sample directory (as extracted, with its kmod/ glue) is copied into the
release's chroot and built there with the release's own compiler.  The build
log is kept next to the module under ``build/<target>/<name>/``; a compiler
or modpost warning fails the build.  A bcc program is byte-compiled by the
release's own python3 (the one its guest runs), warnings as errors; its BPF
C text is compiled in the guest, where bcc needs the running kernel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .arches import ARCHES
from .buildenv import BuildEnv, Kernel, chroot_command
from .sample import Sample

WARNING_RE = re.compile(r"\bwarning:|^WARNING:", re.MULTILINE)
BUILD_TIMEOUT = 300


@dataclass(frozen=True)
class BuildResult:
    status: str  # ok | failed | expected-failure | unexpected-success
    seconds: float
    log: str  # path of the full build log
    problem: str  # first error or warning line, empty when ok
    artifact: str  # what the guest runs: the built .ko or the checked bcc program; empty when none


def _problem(log: str) -> str:
    for line in log.splitlines():
        if "error" in line.lower() or WARNING_RE.search(line):
            return line.strip()
    return ""


def _status(sample: Sample, returncode: int, log: str) -> str:
    built = returncode == 0 and not WARNING_RE.search(log)
    if sample.build_fails:
        if built:
            return "unexpected-success"
        return "expected-failure" if re.search(sample.build_error, log) else "failed"
    return "ok" if built else "failed"


def _command(kernel: Kernel, sample: Sample, inside: Path) -> list[str]:
    if sample.kind == "bcc":
        return ["python3", "-W", "error", "-m", "py_compile", str(inside / sample.filename)]
    return ["make", *ARCHES[kernel.arch].make_vars, "-C", kernel.headers, f"M={inside}", "modules"]


def build_sample(env: BuildEnv, kernel: Kernel, sample_dir: Path, sample: Sample, out: Path) -> BuildResult:
    """Build ``sample_dir`` for ``kernel``; results go to ``out`` (replaced)."""
    inside = Path("/kd-build") / f"{kernel.target}-{os.getpid()}" / sample.name
    work = env.root / inside.relative_to("/")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(sample_dir, work)
    argv = _command(kernel, sample, inside)
    started = time.monotonic()
    try:
        # Its own session: an interrupt reaches the run, which stops builds and guests itself.
        proc = subprocess.run(
            chroot_command(env.root, argv),
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            start_new_session=True,
        )
        # Paths relative to the sample, as a reader building it by hand would see them.
        log, returncode = (proc.stdout + proc.stderr).replace(f"{inside}/", ""), proc.returncode
    except subprocess.TimeoutExpired:
        log, returncode = f"build timed out after {BUILD_TIMEOUT} s\n", -1
    seconds = time.monotonic() - started
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    log_path = out / "build.log"
    log_path.write_text(f"$ {' '.join(argv)}\n{log}")
    status = _status(sample, returncode, log)
    artifact = ""
    if status == "ok":
        built = sample.filename if sample.kind == "bcc" else f"{sample.name}.ko"
        artifact = str(out / built)
        shutil.copy(work / built, artifact)
    shutil.rmtree(work)
    problem = "" if status == "ok" else _problem(log) or f"{argv[0]} exited {returncode}"
    if status == "unexpected-success":
        problem = "the page says this sample cannot build, but it built"
    return BuildResult(status, round(seconds, 2), str(log_path), problem, artifact)
