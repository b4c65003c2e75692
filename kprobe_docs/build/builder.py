"""Build stage: compile a sample out of tree against a target's headers.

The sample directory (as extracted, with its kmod/ glue) is copied into the
release's chroot and built there with the release's own compiler.  The build
log is kept next to the module under ``build/<target>/<name>/``; a compiler
or modpost warning fails the build.  A bcc program is byte-compiled by the
release's own python3 (the one its guest runs), warnings as errors; its BPF
C text is compiled in the guest, where bcc needs the running kernel.  A
tracefs script is parsed (``sh -n``) by the release's POSIX shell; a
bpftrace program is only copied, since bpftrace parses it in the guest.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .. import interrupt
from ..sources.arches import ARCHES
from ..sources.sample import Sample
from .environment import BuildEnv, Kernel, chroot_command

WARNING_RE = re.compile(r"\bwarning:|^WARNING:", re.MULTILINE)
BUILD_TIMEOUT = 300


@dataclass(frozen=True)
class BuildResult:
    status: str  # ok | failed | expected-failure | unexpected-success
    seconds: float
    log: str  # path of the full build log
    problem: str  # first error or warning line, empty when ok
    artifact: str  # what the guest runs: the built .ko, or the checked program or script; empty when none


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


def _command(headers: str, make_vars: tuple[str, ...], sample: Sample, inside: Path) -> list[str]:
    if sample.kind == "bcc":
        return ["python3", "-W", "error", "-m", "py_compile", str(inside / sample.filename)]
    if sample.kind in ("tracefs", "perf"):  # the release's /bin/sh (dash) parses it: no bashisms get through
        return ["sh", "-n", str(inside / sample.filename)]
    if sample.kind == "bpftrace":  # parsing needs the running kernel: bpftrace itself does it, in the guest
        return ["test", "-s", str(inside / sample.filename)]
    return ["make", *make_vars, "-C", headers, f"M={inside}", "modules"]


def _build_dir(kernel: Kernel) -> Path:
    """This process's build directory for ``kernel``, inside the chroot."""
    return Path("/kd-build") / f"{kernel.target}-{os.getpid()}"


def remove_build_dir(env: BuildEnv, kernel: Kernel) -> None:
    """Remove this process's build directory for ``kernel`` from the chroot, once its builds are done,
    and those of runs that ended without removing theirs (killed, or a machine that went down)."""
    mine = env.root / _build_dir(kernel).relative_to("/")
    ended = [
        d for d in mine.parent.glob(f"{kernel.target}-*") if not Path(f"/proc/{d.name.rsplit('-', 1)[1]}").exists()
    ]
    for directory in [mine, *ended]:
        shutil.rmtree(directory, ignore_errors=True)


def build_sample(env: BuildEnv, kernel: Kernel, sample_dir: Path, sample: Sample, out: Path) -> BuildResult:
    """Build ``sample_dir`` for ``kernel`` in the release's chroot; results go to ``out`` (replaced)."""
    inside = _build_dir(kernel) / sample.name
    argv = _command(kernel.headers, ARCHES[kernel.arch].make_vars, sample, inside)
    return _build(
        sample, sample_dir, env.root / inside.relative_to("/"), inside, argv, chroot_command(env.root, argv), out
    )


def build_on_host(headers: Path, sample_dir: Path, sample: Sample, work: Path, out: Path) -> BuildResult:
    """Build ``sample_dir`` on this machine against ``headers`` (its running kernel's), in ``work``."""
    argv = _command(str(headers), (), sample, work / sample.name)
    return _build(sample, sample_dir, work / sample.name, work / sample.name, argv, argv, out)


def _build(
    sample: Sample, sample_dir: Path, work: Path, shown: Path, argv: list[str], command: list[str], out: Path
) -> BuildResult:
    """Copy the sample to ``work`` (``shown`` is how the build sees it), run ``command``, keep the log in ``out``."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(sample_dir, work)
    started = time.monotonic()
    try:
        # Its own process group, ended with everything make started on an interrupt or a timeout.
        proc = interrupt.run(command, timeout=BUILD_TIMEOUT)
        # Paths relative to the sample, as a reader building it by hand would see them.
        log, returncode = (proc.stdout + proc.stderr).replace(f"{shown}/", ""), proc.returncode
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
        built = f"{sample.name}.ko" if sample.kind == "kmod" else sample.filename
        artifact = str(out / built)
        shutil.copy(work / built, artifact)
    shutil.rmtree(work)
    problem = "" if status == "ok" else _problem(log) or f"{argv[0]} exited {returncode}"
    if status == "unexpected-success":
        problem = "the page says this sample cannot build, but it built"
    return BuildResult(status, round(seconds, 2), str(log_path), problem, artifact)
