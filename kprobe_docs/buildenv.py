"""Build environment stage: one mmdebstrap chroot per Debian release.

The chroot holds the release's own compiler, make, kmod and busybox-static and
the headers of each target flavour; the matching kernel image packages are
downloaded by apt inside it (signatures checked) and unpacked next to it.
Everything lives under ``<cache>/buildenv/<release>-<recipe hash>/`` and is
reused until the recipe changes; a directory without a valid stamp is an
interrupted or corrupt preparation and is made again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from .paths import cache_dir
from .targets import Mirror, Target

RECIPE_VERSION = 1
BASE_PACKAGES = ("gcc", "make", "kmod", "libc6-dev", "busybox-static")
APT_OPTIONS = ('Acquire::Check-Valid-Until "false"', 'APT::Install-Recommends "false"')
STAMP = "stamp.json"
Progress = Callable[[str], None]


class BuildEnvError(RuntimeError):
    """Preparing a build environment failed; the message says where to look."""


@dataclass(frozen=True)
class Kernel:
    """A target's kernel: the image package unpacked, the headers in the chroot."""

    target: str
    release: str  # uname -r, e.g. 6.1.0-56-amd64
    package: str
    version: str  # Debian package version, e.g. 6.1.192-2
    sha256: str
    vmlinuz: str  # absolute path on the host
    headers: str  # path inside the chroot

    def config(self, options: tuple[str, ...]) -> dict[str, str]:
        """Values of ``options`` in the image's own config file ("n" when unset)."""
        path = Path(self.vmlinuz).parent / f"config-{self.release}"
        values = dict(re.findall(r"^(CONFIG_\w+)=(.*)$", path.read_text(), re.MULTILINE))
        return {option: values.get(option, "n").strip('"') for option in options}

    @property
    def upstream(self) -> tuple[int, int]:
        match = re.match(r"(\d+)\.(\d+)", self.version)
        if match is None:
            raise BuildEnvError(f"cannot read a kernel version from {self.version!r}")
        return int(match[1]), int(match[2])


@dataclass(frozen=True)
class BuildEnv:
    release: str
    directory: Path
    kernels: dict[str, Kernel]

    @property
    def root(self) -> Path:
        return self.directory / "root"

    @property
    def busybox(self) -> Path:
        return self.root / "bin" / "busybox"


def recipe(release: str, targets: list[Target], mirror: Mirror) -> dict[str, object]:
    suites = sorted({s for t in targets for s in t.suites})
    flavours = sorted({t.flavour for t in targets})
    return {
        "version": RECIPE_VERSION,
        "release": release,
        "sources": mirror.apt_lines(tuple(suites)),
        "packages": [*BASE_PACKAGES, *(f"linux-headers-{f}" for f in flavours)],
        "images": [f"linux-image-{f}" for f in flavours],
        "apt_options": list(APT_OPTIONS),
    }


def env_directory(spec: dict[str, object]) -> Path:
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / "buildenv" / f"{spec['release']}-{digest}"


def chroot_command(root: Path, argv: list[str]) -> list[str]:
    """Run ``argv`` in ``root`` with its own /proc, in a private mount namespace."""
    return ["unshare", "--mount", "--pid", "--fork", f"--mount-proc={root}/proc", "chroot", str(root), *argv]


def _run_logged(argv: list[str], log: Path, progress: Progress, what: str) -> None:
    """Run ``argv``, copy its output to ``log`` and its ``I:`` lines to progress."""
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if line.startswith(("I: ", "E: ", "W: ")):
                progress(f"  {what}: {line.strip()}")
        if proc.wait() != 0:
            raise BuildEnvError(f"{what} failed (exit {proc.returncode}); see {log}")


def _mmdebstrap(spec: dict[str, object], root: Path, log: Path, progress: Progress) -> None:
    argv = [
        "mmdebstrap",
        "--variant=apt",
        "--mode=root",
        "--skip=cleanup/apt/lists",
        f"--include={','.join(spec['packages'])}",  # type: ignore[arg-type]
        *(f"--aptopt={opt}" for opt in APT_OPTIONS),
        str(spec["release"]),
        str(root),
        *spec["sources"],  # type: ignore[misc]
    ]
    _run_logged(argv, log, progress, f"mmdebstrap {spec['release']}")


def _deb_field(deb: Path, field: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), field], check=True, capture_output=True, text=True
    ).stdout.strip()


def _vmlinuz_in(deb: Path) -> str | None:
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], check=True, capture_output=True, text=True).stdout
    match = re.search(r"\./boot/(vmlinu[xz]-\S+)", listing)
    return match[1] if match else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _in_chroot(root: Path, script: str) -> str:
    proc = subprocess.run(chroot_command(root, ["sh", "-c", script]), capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildEnvError(f"in the chroot, {script!r} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def _depends(root: Path, package: str) -> list[str]:
    out = _in_chroot(root, f"apt-cache depends --no-recommends --no-suggests {package}")
    return [
        line.split(":", 1)[1].strip() for line in out.splitlines() if line.strip().lstrip("|").startswith("Depends:")
    ]


def _find_image(root: Path, target: Target, log: Path) -> Path:
    """Download the image package (following the metapackage's dependencies) with apt.

    ``apt-get download`` fetches a package whether or not the chroot has it
    installed (trixie's headers depend on the image), checked against the
    signed indexes like any apt download.
    """
    debs = root / "kd-debs" / target.flavour
    debs.mkdir(parents=True, exist_ok=True)
    names = [target.image_package]
    for _ in range(3):
        wanted = [n for n in names if n.startswith("linux-") and "<" not in n]
        with log.open("a") as out:
            out.write(_in_chroot(root, f"cd /kd-debs/{target.flavour} && apt-get download {' '.join(wanted)}"))
        for name in wanted:
            for deb in debs.glob(f"{name}_*.deb"):
                if _vmlinuz_in(deb) is not None:
                    return deb
        names = [dep for name in wanted for dep in _depends(root, name)]
    raise BuildEnvError(f"{target.name}: no package that {target.image_package} depends on holds /boot/vmlinuz-*")


def _fetch_kernel(directory: Path, target: Target, log: Path, progress: Progress) -> Kernel:
    """Fetch the target's image package with apt in the chroot and unpack it."""
    root = directory / "root"
    progress(f"  {target.name}: downloading {target.image_package}")
    deb = _find_image(root, target, log)
    image = _vmlinuz_in(deb)
    assert image is not None
    unpacked = directory / "kernels" / target.flavour
    unpacked.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
    release = image.split("-", 1)[1]
    headers = f"/usr/src/linux-headers-{release}"
    if not (root / headers.lstrip("/")).is_dir():
        raise BuildEnvError(f"{target.name}: image {release} has no matching headers in the chroot ({headers})")
    return Kernel(
        target=target.name,
        release=release,
        package=_deb_field(deb, "Package"),
        version=_deb_field(deb, "Version"),
        sha256=_sha256(deb),
        vmlinuz=str(unpacked / "boot" / image),
        headers=headers,
    )


def _load(directory: Path, spec: dict[str, object]) -> BuildEnv | None:
    try:
        stamp = json.loads((directory / STAMP).read_text())
        kernels = {name: Kernel(**k) for name, k in stamp["kernels"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    env = BuildEnv(str(spec["release"]), directory, kernels)
    intact = stamp.get("recipe") == spec and env.busybox.is_file()
    intact = intact and all(Path(k.vmlinuz).is_file() for k in kernels.values())
    return env if intact else None


def cached(release: str, targets: list[Target], mirror: Mirror) -> BuildEnv | None:
    """The prepared environment for these targets, or None if it must be made."""
    spec = recipe(release, targets, mirror)
    env = _load(env_directory(spec), spec)
    if env is None or any(t.name not in env.kernels for t in targets):
        return None
    return env


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock beside ``directory`` (parallel targets, concurrent runs)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with directory.with_name(directory.name + ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def prepare(release: str, targets: list[Target], mirror: Mirror, progress: Progress) -> BuildEnv:
    """The release's environment for ``targets``: reused if cached, else made."""
    directory = env_directory(recipe(release, targets, mirror))
    with _locked(directory):
        return _prepare(release, targets, mirror, progress)


def _prepare(release: str, targets: list[Target], mirror: Mirror, progress: Progress) -> BuildEnv:
    spec = recipe(release, targets, mirror)
    directory = env_directory(spec)
    env = _load(directory, spec)
    if env is not None and all(t.name in env.kernels for t in targets):
        progress(f"{release}: build environment cached in {directory}")
        return env
    if os.geteuid() != 0:
        raise BuildEnvError(f"{release}: making a build chroot needs root (mmdebstrap --mode=root, chroot)")
    if directory.exists():
        progress(f"{release}: discarding an incomplete build environment in {directory}")
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    log = directory / "prepare.log"
    progress(f"{release}: making the build chroot with mmdebstrap (about a minute); log: {log}")
    _mmdebstrap(spec, directory / "root", log, progress)
    kernels = {t.name: _fetch_kernel(directory, t, log, progress) for t in targets}
    stamp = {"recipe": spec, "kernels": {n: asdict(k) for n, k in kernels.items()}}
    tmp = directory / (STAMP + ".tmp")
    tmp.write_text(json.dumps(stamp, indent=2))
    os.replace(tmp, directory / STAMP)
    for kernel in kernels.values():
        progress(f"{release}: {kernel.target} kernel {kernel.package} {kernel.version}")
    return BuildEnv(release, directory, kernels)
