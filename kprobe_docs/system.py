"""System packages the pipeline runs: installed with apt when root, else named."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

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
    "tidy": "tidy",  # the HTML validity check of the site
    "cpio": "cpio",  # reading the initramfs back, as the kernel would
    "qemu-img": "qemu-utils",  # the test machines' copy-on-write disks
    "mke2fs": "e2fsprogs",  # the test machines' root file systems
    "openssl": "openssl",  # the test machines' module-signing keys
}
# what running LAVA jobs here needs (``kprobe-docs lava run``, and the tests)
LAVA = {
    "lava-run": "lava-dispatcher",  # LAVA's dispatcher; lava-common, which it depends on, has the job schema
}
# Installed without their recommends: lava-dispatcher's are servers (NFS, TFTP, inetd, LXC, ser2net) that a
# local lava-run of a QEMU job does not use, and that would start on the machine.
BARE = {"lava-dispatcher"}
# files, not commands, that the tests need: path -> package
TEST_FILES = {
    "/usr/share/OVMF/OVMF_CODE_4M.fd": "ovmf",  # UEFI firmware of the test machines, holding their signing key
}


class SetupError(RuntimeError):
    """A system package is missing and cannot be installed from here."""


def missing_packages(commands: dict[str, str], files: dict[str, str] | None = None) -> list[str]:
    missing = {pkg for cmd, pkg in commands.items() if shutil.which(cmd) is None}
    missing |= {pkg for path, pkg in (files or {}).items() if not Path(path).exists()}
    return sorted(missing)


def install_lines(packages: list[str]) -> list[str]:
    """The apt-get lines installing ``packages``: those in ``BARE`` without their recommends."""
    plain = [p for p in packages if p not in BARE]
    bare = [p for p in packages if p in BARE]
    lines = [f"apt-get install -y {' '.join(plain)}"] if plain else []
    return lines + ([f"apt-get install -y --no-install-recommends {' '.join(bare)}"] if bare else [])


def ensure(progress: Callable[[str], None], tests: bool = False, lava: bool = False) -> None:
    """Install what is missing (with the tests' tools, LAVA's included, if ``tests``; LAVA's if ``lava``) with apt
    as root; else say what to run."""
    commands = {**PIPELINE, **(TESTS if tests else {}), **(LAVA if tests or lava else {})}
    files = TEST_FILES if tests else {}
    packages = missing_packages(commands, files)
    if not packages:
        return
    lines = install_lines(packages)
    if os.geteuid() != 0:
        raise SetupError(f"missing system packages; run as root: {' && '.join(lines)}")
    progress(f"installing system packages: {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"], *(line.split() for line in lines)):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SetupError(f"{' '.join(argv)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    still = missing_packages(commands, files)
    if still:
        raise SetupError(f"apt installed nothing for: {' '.join(still)}")
