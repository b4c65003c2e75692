"""System packages the pipeline runs: installed with apt when root, else named."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

# command -> Debian package that provides it: what verification runs
PIPELINE = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-system-aarch64": "qemu-system-arm",
    "mmdebstrap": "mmdebstrap",
    "dpkg-deb": "dpkg",
    "unshare": "util-linux",
}
# and what only the tests use
TESTS = {
    "chromium": "chromium",  # the browser test
    "man": "man-db",  # rendering the man pages
}


class SetupError(RuntimeError):
    """A system package is missing and cannot be installed from here."""


def missing_packages(commands: dict[str, str]) -> list[str]:
    return sorted({pkg for cmd, pkg in commands.items() if shutil.which(cmd) is None})


def ensure(progress: Callable[[str], None], tests: bool = False) -> None:
    """Install what is missing (with the tests' tools too if ``tests``) with apt as root; else say what to run."""
    commands = {**PIPELINE, **TESTS} if tests else PIPELINE
    packages = missing_packages(commands)
    if not packages:
        return
    line = f"apt-get install -y {' '.join(packages)}"
    if os.geteuid() != 0:
        raise SetupError(f"missing system packages; run as root: {line}")
    progress(f"installing system packages: {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"], line.split()):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SetupError(f"{' '.join(argv)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    still = missing_packages(commands)
    if still:
        raise SetupError(f"apt installed nothing for: {' '.join(still)}")
