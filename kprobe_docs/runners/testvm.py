"""Full Debian systems under QEMU that play a test machine, for the host runner's own tests.

Each is a real Debian root made with mmdebstrap for one release (systemd,
that release's kernel with its headers and initramfs, the compiler,
python3-venv, python3-bpfcc, bpftrace and linux-perf, no network), on an
ext4 disk image, booted with its own kernel and initramfs under UEFI
firmware (OVMF).  The
firmware's ``db`` variable holds the test's module-signing certificate:
Debian's kernels trust ``db`` keys for module signatures (the .platform
keyring), which is how a signing test can pass with ``module.sig_enforce=1``.
The image is cached like a build chroot; a session boots a copy-on-write
overlay of it, so the image never changes.

A 9p share (mount tag ``kdshare``) brings in the project's files, a
wheelhouse of the project and its Python dependencies for the release's
python3, and the session's phases; a systemd unit plays the user: each boot
it runs the phases from where the last boot left them (the state is on the
guest's disk, so a phase that crashes the machine is followed, after the
reboot, by the next one), writes each phase's output, exit status and
results to the share, and powers the machine off after a ``stop`` phase or
the last one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import interrupt
from ..build.environment import remove_tree
from ..paths import cache_dir, project_root
from ..sources.targets import find_mirror, load_catalog, system_sources

Progress = Callable[[str], None]
ROOT = project_root(Path(__file__).parent)
IMAGE_VERSION = 1
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
PACKAGES = (
    "systemd-sysv", "udev", "kmod", "procps", "e2fsprogs", "initramfs-tools", "linux-image-amd64",
    "linux-headers-amd64", "gcc", "make", "libc6-dev", "python3", "python3-venv", "python3-bpfcc", "bpftrace",
    "linux-perf", "mokutil",
)  # fmt: skip
UNIT = """[Unit]
Description=kprobe-docs: a test machine's user, the phases of the kdshare share
After=basic.target systemd-modules-load.service
[Service]
Type=oneshot
ExecStartPre=/bin/mkdir -p /mnt/kd
# The share's virtio device is probed by udev while this unit may already run: wait for it, and power off
# at once (the host then sees the phases missing) rather than sit at the login prompt until the host's deadline.
ExecStartPre=/bin/sh -c 'for i in $$(seq 60); do mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 \
    kdshare /mnt/kd && exit 0; sleep 1; done; echo "@@KDVM kdshare never appeared" >/dev/ttyS0; poweroff -f'
ExecStart=/bin/sh /mnt/kd/session.sh
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
[Install]
WantedBy=multi-user.target
"""
# Run by the unit at every boot: the phases from where the last boot left them.  A phase is a line
# "NAME<TAB>COMMAND"; a phase named "stop" powers the machine off and is done at the next boot.
SESSION = r"""#!/bin/sh
set -u
state=/var/lib/kd-test
mkdir -p "$state" /mnt/kd/out
say() { echo "@@KDVM $*" >/dev/ttyS0; }
done_phase() { echo "$1" >>"$state/done"; }
say booted "$(uname -r)"
while IFS='	' read -r name command; do
	grep -qx "$name" "$state/done" 2>/dev/null && continue
	if [ "$name" = stop ]; then
		if [ -e "$state/stopping" ]; then rm "$state/stopping"; done_phase stop; continue; fi
		touch "$state/stopping"
		say stop
		systemctl poweroff
		exit 0
	fi
	if [ -e "$state/running.$name" ]; then
		say phase "$name" rebooted
		echo rebooted >"/mnt/kd/out/$name.rc"
		done_phase "$name"
		continue
	fi
	touch "$state/running.$name"
	say phase "$name" begins
	started=$(date +%s)
	(cd /root && sh -c "$command") >"/mnt/kd/out/$name.log" 2>&1
	echo $? >"/mnt/kd/out/$name.rc"
	echo $(($(date +%s) - started)) >"/mnt/kd/out/$name.seconds"
	sync
	say phase "$name" ends "$(cat "/mnt/kd/out/$name.rc")"
	done_phase "$name"
done </mnt/kd/phases
say finished
systemctl poweroff
"""


@dataclass(frozen=True)
class Release:
    """A Debian release a test machine runs."""

    name: str  # bookworm
    python: str  # its python3, as pip names versions: 3.11
    qemu_target: str  # the matching QEMU target of the catalog, for its apt suites

    @property
    def machine(self) -> str:
        return f"host-debian-{self.name}-amd64"


RELEASES = (Release("bookworm", "3.11", "debian-bookworm-amd64"), Release("trixie", "3.13", "debian-trixie-amd64"))


@dataclass(frozen=True)
class Image:
    disk: Path  # ext4, the root file system
    kernel: Path
    initrd: Path
    release: str  # uname -r of its kernel


def _run(argv: list[str], what: str, timeout: float = 1800) -> str:
    proc = interrupt.run(argv, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-2000:]}")
    return proc.stdout


def _recipe(release: Release) -> dict[str, object]:
    target = load_catalog().targets[release.qemu_target]
    mirror = find_mirror(system_sources())
    return {"version": IMAGE_VERSION, "release": release.name, "sources": mirror.apt_lines(target.suites),
            "packages": list(PACKAGES), "unit": UNIT}  # fmt: skip


def image(release: Release, progress: Progress) -> Image:
    """The release's test-machine image, from the cache or made (mmdebstrap, then mke2fs: a few minutes)."""
    spec = _recipe(release)
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    directory = cache_dir() / "hostvm" / f"{release.name}-{digest}"
    stamp = directory / "stamp.json"
    if stamp.exists():
        found = json.loads(stamp.read_text())
        return Image(directory / "root.img", directory / "vmlinuz", directory / "initrd.img", found["release"])
    if directory.exists():
        remove_tree(directory)
    directory.mkdir(parents=True)
    root = directory / "root"
    progress(f"{release.machine}: making the test machine's root with mmdebstrap (a few minutes)")
    unit = directory / "kd-test.service"
    unit.write_text(UNIT)
    hooks = [
        '--customize-hook=mkdir -p "$1/etc/systemd/system/multi-user.target.wants" "$1/var/log/journal"',
        f"--customize-hook=copy-in {unit} /etc/systemd/system",
        '--customize-hook=ln -s ../kd-test.service "$1/etc/systemd/system/multi-user.target.wants/kd-test.service"',
        '--customize-hook=echo "/dev/vda / ext4 defaults 0 1" > "$1/etc/fstab"',
        f'--customize-hook=echo "{release.machine}" > "$1/etc/hostname"',
        '--customize-hook=passwd --root "$1" --delete root',
    ]
    argv = ["mmdebstrap", "--variant=apt", "--mode=root", f"--include={','.join(PACKAGES)}"]
    argv += ['--aptopt=Acquire::Check-Valid-Until "false"', '--aptopt=APT::Install-Recommends "false"', *hooks]
    _run([*argv, release.name, str(root), *spec["sources"]], "mmdebstrap")  # type: ignore[misc]
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    kernel_release = kernels[-1].name.removeprefix("vmlinuz-")
    shutil.copy(kernels[-1], directory / "vmlinuz")
    shutil.copy(root / "boot" / f"initrd.img-{kernel_release}", directory / "initrd.img")
    progress(f"{release.machine}: writing its ext4 disk image (kernel {kernel_release})")
    _run(["mke2fs", "-q", "-t", "ext4", "-L", "kdroot", "-d", str(root), str(directory / "root.img"), "8G"], "mke2fs")
    remove_tree(root)
    stamp.write_text(json.dumps({"release": kernel_release, "recipe": spec}, indent=1))
    return Image(directory / "root.img", directory / "vmlinuz", directory / "initrd.img", kernel_release)


def _dependencies() -> list[str]:
    """The project's own dependencies, as pyproject.toml names them: what a test machine installs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"])


def wheelhouse(release: Release, into: Path) -> None:
    """The project's wheel and every wheel it needs on the release's python3, for an install with no network."""
    into.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    abi = f"cp{release.python.replace('.', '')}"
    # setuptools builds in the source tree (build/, *.egg-info): build from a copy of our own,
    # so that machines prepared side by side never share one
    with tempfile.TemporaryDirectory(prefix="kd-wheel-") as copy:
        _project_files(Path(copy))
        _run([*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(into), copy], "building the project's wheel")
    # setuptools builds the checkout's own wheel offline; tox is what ./run-tox installs
    wanted = [*_dependencies(), "setuptools>=77", "tox"]
    platform = ["--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64"]
    _run(
        [*pip, "download", "--quiet", "--dest", str(into), "--only-binary=:all:", "--python-version", release.python,
         "--implementation", "cp", "--abi", abi, "--abi", "none", *platform, "--platform", "any", *wanted],
        "downloading the project's dependencies",
    )  # fmt: skip


def _project_files(into: Path) -> None:
    """The checkout as a user would clone it: the files git tracks, and new ones not ignored."""
    listed = _run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard"], "git ls-files").splitlines()
    for name in listed:
        source = ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)


def signing_keys(into: Path) -> tuple[Path, Path, Path]:
    """A module-signing key and its certificate, and a second certificate the machine will not trust."""
    into.mkdir(parents=True, exist_ok=True)
    made = []
    for role in ("trusted", "untrusted"):
        config = into / f"{role}.cnf"
        config.write_text(
            "[ req ]\ndistinguished_name = dn\nprompt = no\nx509_extensions = ext\n"
            f"[ dn ]\nO = kprobe-docs test\nCN = kprobe-docs {role} module signing key\n"
            "[ ext ]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=codeSigning\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
        )
        key, cert = into / f"{role}.key", into / f"{role}.crt"
        _run(
            ["openssl", "req", "-new", "-nodes", "-utf8", "-sha256", "-days", "36500", "-batch", "-x509", "-config",
             str(config), "-newkey", "rsa:2048", "-keyout", str(key), "-out", str(cert)],
            "openssl",
        )  # fmt: skip
        made += [key, cert]
    return made[0], made[1], made[3]


def varstore(cert: Path, into: Path) -> Path:
    """OVMF's variables with ``cert`` in ``db`` and no platform key (so Secure Boot stays off)."""
    tool = shutil.which("virt-fw-vars", path=str(Path(sys.executable).parent)) or shutil.which("virt-fw-vars")
    if tool is None:
        raise RuntimeError("virt-fw-vars (PyPI: virt-firmware) is missing: the tox test environments install it")
    owner = "6ba4c7d1-7f54-4b62-9e6c-1f4d3b2a8e55"  # any GUID: the owner of our db entry
    _run([tool, "-i", str(OVMF_VARS), "--add-db", owner, str(cert), "-o", str(into)], "virt-fw-vars")
    return into


class Session:
    """One test machine for one test session: an overlay disk, a share, and boots until it powers off."""

    def __init__(self, release: Release, work: Path, phases: list[tuple[str, str]], progress: Progress) -> None:
        self.release = release
        self.work = work
        self.progress = progress
        self.image = image(release, progress)
        self.share = work / "share"
        (self.share / "out").mkdir(parents=True)
        _project_files(self.share / "kprobe-docs")
        wheelhouse(release, self.share / "wheels")
        self.key, self.cert, self.untrusted = signing_keys(self.share / "keys")
        self.vars = varstore(self.cert, work / "VARS.fd")
        (self.share / "session.sh").write_text(SESSION)
        (self.share / "phases").write_text("".join(f"{name}\t{command}\n" for name, command in phases))
        self.disk = work / "disk.qcow2"
        _run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(self.image.disk), str(self.disk)],
             "qemu-img")  # fmt: skip
        self.boots: list[float] = []

    def boot(self, append: str = "", timeout: float = 3600) -> list[str]:
        """Boot until the machine powers off (a panic's reboot included); its console lines."""
        cmdline = f"root=/dev/vda rw console=ttyS0 panic=5 {append}".strip()
        argv = [
            "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg,thread=single", "-cpu", "max", "-smp", "2",
            "-m", "2048", "-display", "none", "-serial", "stdio", "-monitor", "none", "-nic", "none",
            "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,file={self.vars}",
            "-drive", f"file={self.disk},if=virtio,format=qcow2",
            "-virtfs", f"local,path={self.share},mount_tag=kdshare,security_model=passthrough,id=kdshare",
            "-kernel", str(self.image.kernel), "-initrd", str(self.image.initrd), "-append", cmdline,
        ]  # fmt: skip
        console = self.work / f"console-{len(self.boots) + 1}.log"
        started = time.monotonic()
        with console.open("w") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip
            try:
                self._watch(proc, console, started + timeout)
            finally:
                interrupt.end_group(proc)
        self.boots.append(round(time.monotonic() - started, 1))
        return console.read_text(errors="replace").splitlines()

    def _watch(self, proc: subprocess.Popen[bytes], console: Path, deadline: float) -> None:
        said = 0
        while proc.poll() is None:
            interrupt.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.release.machine}: the machine did not power off in time; see {console}")
            lines = [line for line in console.read_text(errors="replace").splitlines() if "@@KDVM " in line]
            for line in lines[said:]:
                self.progress(f"{self.release.machine}: {line.split('@@KDVM ', 1)[1]}")
            said = len(lines)
            time.sleep(1)

    def outcome(self, phase: str) -> tuple[str, str]:
        """A phase's exit status (or "rebooted", or "" if it never ran) and its output."""
        out = self.share / "out"
        rc = (out / f"{phase}.rc").read_text().strip() if (out / f"{phase}.rc").exists() else ""
        log = (out / f"{phase}.log").read_text(errors="replace") if (out / f"{phase}.log").exists() else ""
        return rc, log

    def results(self, phase: str) -> list[Path]:
        return sorted((self.share / "out" / phase).glob("*.json"))
