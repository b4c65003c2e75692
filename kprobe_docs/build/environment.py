"""Build environment stage: one mmdebstrap chroot per Debian release (and pin).

The chroot holds the release's own compiler, make, kmod, busybox-static,
bcc (python3-bpfcc) and bpftrace (bcc guests boot into this chroot as their
root), the
headers of each amd64 flavour and, for arm64 targets, the release's aarch64
cross compiler.  Each target's kernel is fetched by apt inside it
(signatures checked): the package that holds the kernel image is unpacked
next to the chroot; a foreign arch's headers (which would replace the host
compiler if installed) and busybox are unpacked too.  Everything lives under
``<cache>/buildenv/<release>[-<pin>]-<recipe hash>/`` and is reused until the
recipe changes; a directory without a valid stamp is an interrupted or
corrupt preparation and is made again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .. import interrupt, locks
from ..paths import cache_dir
from ..sources.arches import ARCHES, HOST_ARCH, apt_suffix
from ..sources.expectations import Context
from ..sources.targets import Mirror, Target

RECIPE_VERSION = 3
# linux-base: bullseye's /usr/bin/perf (a wrapper running perf_5.10) is there, not in linux-perf.
BASE_PACKAGES = (
    "gcc", "make", "kmod", "libc6-dev", "busybox-static", "python3-bpfcc", "bpftrace", "linux-perf", "linux-base"
)  # fmt: skip
APT_OPTIONS = ('Acquire::Check-Valid-Until "false"', 'APT::Install-Recommends "false"')
# Kernel postinst hooks only make an initramfs nobody boots; skipping them halves mmdebstrap's time.
DPKG_OPTIONS = ("path-exclude=/etc/kernel/postinst.d/*",)
IMAGE_RE = re.compile(
    r"^\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+(\./(?:boot/vmlinu[xz]-(\S+)|usr/lib/modules/([^/\s]+)/vmlinu[xz]))$"
)
NOT_IMAGES = ("linux-modules-", "linux-headers-", "linux-kbuild-")
STAMP = "stamp.json"
Progress = Callable[[str], None]


class BuildEnvError(RuntimeError):
    """Preparing a build environment failed; the message says where to look."""


@dataclass(frozen=True)
class Kernel:
    """A target's kernel: the image unpacked, the headers and a busybox of its arch."""

    target: str
    arch: str
    release: str  # uname -r, e.g. 6.1.0-56-amd64
    package: str  # the package holding the image
    version: str  # its Debian version, e.g. 6.1.192-2
    sha256: str  # of that .deb
    vmlinuz: str  # absolute path on the host
    headers: str  # path inside the chroot
    config: str  # the headers' .config, absolute path on the host
    busybox: str  # a static busybox for the guest, absolute path on the host
    modules: str  # the kernel's modules tree (lib/modules/<release>) on the host; empty if it has none
    image_sha256: str = ""  # of the unpacked image, recorded when it was fetched and checked before use
    image_size: int = 0

    def config_all(self) -> dict[str, str]:
        """Every option the kernel's config sets, with its value."""
        found = re.findall(r"^(CONFIG_\w+)=(.*)$", Path(self.config).read_text(), re.MULTILINE)
        return {option: value.strip('"') for option, value in found}

    def config_values(self, options: tuple[str, ...]) -> dict[str, str]:
        """Values of ``options`` in the kernel's config ("n" when unset)."""
        values = self.config_all()
        return {option: values.get(option, "n") for option in options}

    def context(self) -> Context:
        """What conditional expectations ask of a target: arch, version, configuration."""
        return Context(self.arch, self.upstream, self.config_all())

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


def recipe(targets: list[Target], mirror: Mirror) -> dict[str, object]:
    """Everything that decides what the chroot holds; its hash names the directory."""
    release, pin = targets[0].env_key
    pinned = f"/{pin}" if pin else ""
    flavours = sorted({t.flavour for t in targets if t.arch == HOST_ARCH} or {HOST_ARCH})
    arches = sorted({HOST_ARCH} | {t.arch for t in targets})
    cross = sorted({p for t in targets for p in ARCHES[t.arch].cross_packages})
    return {
        "version": RECIPE_VERSION,
        "release": release,
        "pin": pin,
        "architectures": arches,
        "sources": mirror.apt_lines(tuple(sorted({s for t in targets for s in t.suites}))),
        "packages": [*BASE_PACKAGES, *(f"linux-headers-{f}{pinned}" for f in flavours), *cross],
        "images": sorted(t.image_package for t in targets),
        "apt_options": list(APT_OPTIONS),
        "dpkg_options": list(DPKG_OPTIONS),
    }


def env_directory(spec: dict[str, object]) -> Path:
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    name = "-".join(str(part) for part in (spec["release"], spec["pin"], digest) if part)
    return cache_dir() / "buildenv" / name


def chroot_command(root: Path, argv: list[str]) -> list[str]:
    """Run ``argv`` in ``root`` with its own /proc, in a private mount namespace."""
    unshare = ["unshare", "--mount", "--pid", "--fork", "--kill-child", f"--mount-proc={root}/proc"]
    return [*unshare, "chroot", str(root), *argv]


def _run_logged(argv: list[str], log: Path, progress: Progress, what: str) -> None:
    """Run ``argv``, copy its output to ``log`` and its ``I:``/``W:``/``E:`` lines to progress."""
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()

        def line(text: str) -> None:
            out.write(text)
            if text.startswith(("I: ", "E: ", "W: ")):
                progress(f"  {what}: {text.strip()}")

        status = interrupt.stream(argv, line)
    if status != 0:
        raise BuildEnvError(f"{what} failed (exit {status}); see {log}")


def _mmdebstrap(spec: dict[str, object], root: Path, log: Path, progress: Progress) -> None:
    argv = [
        "mmdebstrap",
        "--variant=apt",
        "--mode=root",
        "--skip=cleanup/apt/lists",
        f"--architectures={','.join(spec['architectures'])}",  # type: ignore[arg-type]
        f"--include={','.join(spec['packages'])}",  # type: ignore[arg-type]
        *(f"--aptopt={opt}" for opt in APT_OPTIONS),
        *(f"--dpkgopt={opt}" for opt in DPKG_OPTIONS),
        str(spec["release"]),
        str(root),
        *spec["sources"],  # type: ignore[misc]
    ]
    _run_logged(argv, log, progress, f"mmdebstrap {spec['release']}")


def _dpkg_deb(*args: str) -> str:
    proc = interrupt.run(["dpkg-deb", *args])
    if proc.returncode != 0:
        raise BuildEnvError(f"dpkg-deb {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def _deb_field(deb: Path, field: str) -> str:
    return _dpkg_deb("-f", str(deb), field).strip()


def image_in(listing: str) -> tuple[str, str] | None:
    """(path, kernel release) of the kernel image in a ``dpkg-deb -c`` listing, if any.

    Up to 7.1 the image is ``./boot/vmlinuz-<release>``; from 7.2 Debian ships it
    as ``./usr/lib/modules/<release>/vmlinuz`` in a ``linux-binary-*`` package.
    """
    for line in listing.splitlines():
        match = IMAGE_RE.match(line)
        if match:
            return match[1], match[2] or match[3]
    return None


def _listing(deb: Path) -> str:
    return _dpkg_deb("-c", str(deb))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _in_chroot(root: Path, script: str) -> str:
    proc = interrupt.run(chroot_command(root, ["sh", "-c", script]))
    if proc.returncode != 0:
        raise BuildEnvError(f"in the chroot, {script!r} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def _apt_flags(target: Target) -> str:
    pin = f" -t {target.pin}" if target.pin else ""
    return f"-o APT::Sandbox::User=root{pin}"


def _download(root: Path, target: Target, into: str, packages: list[str], log: Path) -> Path:
    """``apt-get download`` into ``/kd-debs/<into>`` of the chroot (checked against signed indexes)."""
    directory = root / "kd-debs" / into
    directory.mkdir(parents=True, exist_ok=True)
    script = f"cd /kd-debs/{into} && apt-get {_apt_flags(target)} download {' '.join(packages)}"
    with log.open("a") as out:
        out.write(f"$ {script}\n{_in_chroot(root, script)}")
    return directory


def _depends(root: Path, target: Target, package: str) -> list[str]:
    out = _in_chroot(root, f"apt-cache {_apt_flags(target)} depends --no-recommends --no-suggests {package}")
    lines = [line.strip().lstrip("|") for line in out.splitlines()]
    return [line.split(":", 1)[1].strip() for line in lines if line.startswith("Depends:")]


def _find_image(root: Path, target: Target, log: Path) -> tuple[Path, str, str]:
    """The .deb holding the target's kernel image, its path in it and the kernel release.

    Follows the metapackage's dependencies (``linux-image-amd64`` ->
    ``linux-image-<release>`` -> ``linux-binary-<release>`` on 7.2+) and fetches
    each with ``apt-get download``, whether or not the chroot has it installed.
    """
    names = [target.image_package]
    for _ in range(4):
        wanted = [n for n in names if n.startswith("linux-") and not n.startswith(NOT_IMAGES) and "<" not in n]
        if not wanted:
            break
        directory = _download(root, target, target.name, wanted, log)
        for name in wanted:
            for deb in directory.glob(f"{name.split(':')[0]}_*.deb"):
                found = image_in(_listing(deb))
                if found is not None:
                    return deb, *found
        names = [dep for name in wanted for dep in _depends(root, target, name)]
    raise BuildEnvError(f"{target.name}: no package that {target.image_package} depends on holds a kernel image")


def _extract(deb: Path, destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    proc = interrupt.run(["dpkg-deb", "-x", str(deb), str(destination)])
    if proc.returncode != 0:
        raise BuildEnvError(f"cannot unpack {deb} into {destination}: {proc.stderr.strip()}")


def _unpack_over(deb: Path, root: Path) -> None:
    """Unpack into ``root`` keeping its symlinked directories (merged /usr): not ``dpkg-deb -x``."""
    script = 'dpkg-deb --fsys-tarfile "$1" | tar -x --keep-directory-symlink -C "$2"'
    proc = interrupt.run(["bash", "-o", "pipefail", "-c", script, "unpack", str(deb), str(root)])
    if proc.returncode != 0:
        raise BuildEnvError(f"cannot unpack {deb} into {root}: {proc.stderr.strip()[-500:]}")


def _foreign_headers(root: Path, target: Target, release: str, log: Path) -> None:
    """A foreign arch's headers, unpacked: installing them would swap the host compiler for that arch's."""
    package = f"linux-headers-{release}{apt_suffix(target.arch)}"
    directory = _download(root, target, f"{target.name}-headers", [package], log)
    for deb in directory.glob("*.deb"):
        _unpack_over(deb, root)


def _busybox(directory: Path, target: Target, log: Path) -> Path:
    """The static busybox of the target's arch (the chroot's own for the host arch)."""
    root = directory / "root"
    if target.arch == HOST_ARCH:
        return root / "bin" / "busybox"
    debs = _download(root, target, f"busybox-{target.arch}", [f"busybox-static{apt_suffix(target.arch)}"], log)
    unpacked = directory / "busybox" / target.arch
    for deb in debs.glob("*.deb"):
        _extract(deb, unpacked)
    found = [p for p in (unpacked / "bin" / "busybox", unpacked / "usr" / "bin" / "busybox") if p.is_file()]
    if not found:
        raise BuildEnvError(f"{target.name}: busybox-static{apt_suffix(target.arch)} holds no busybox binary")
    return found[0]


def _modules_tree(directory: Path, target: Target, release: str, log: Path, progress: Progress) -> str:
    """The unpacked ``lib/modules/<release>`` with its ``modules.builtin``; empty if there is none.

    Up to 7.1 both come in the image package; from 7.2 the modules are
    ``linux-modules-<release>`` and modules.builtin is in ``linux-base-<release>``.
    Only bcc guests need the tree, so its absence fails them, not the target.
    """
    unpacked = directory / "kernels" / target.name
    candidates = [unpacked / prefix / "modules" / release for prefix in ("lib", "usr/lib")]
    found = [c for c in candidates if _complete_tree(c)]
    packages = [f"linux-{part}-{release}{apt_suffix(target.arch)}" for part in ("modules", "base")]
    if not found:
        try:
            for deb in _download(directory / "root", target, f"{target.name}-modules", packages, log).glob("*.deb"):
                _extract(deb, unpacked)
        except BuildEnvError as exc:
            progress(f"  {target.name}: no modules tree for bcc guests: {exc}")
        found = [c for c in candidates if _complete_tree(c)]
    return str(found[0]) if found else ""


def _complete_tree(tree: Path) -> bool:
    return (tree / "kernel").is_dir() and (tree / "modules.builtin").is_file()


def _fetch_kernel(directory: Path, target: Target, log: Path, progress: Progress) -> Kernel:
    """Fetch the target's kernel image with apt in the chroot and unpack it; check the headers match."""
    root = directory / "root"
    progress(f"  {target.name}: downloading {target.image_package}")
    deb, image, release = _find_image(root, target, log)
    unpacked = directory / "kernels" / target.name
    _extract(deb, unpacked)
    if target.arch != HOST_ARCH:
        _foreign_headers(root, target, release, log)
    headers = f"/usr/src/linux-headers-{release}"
    if not (root / headers.lstrip("/") / ".config").is_file():
        raise BuildEnvError(f"{target.name}: kernel {release} has no matching headers in the chroot ({headers})")
    vmlinuz = unpacked / image
    return Kernel(
        target=target.name,
        arch=target.arch,
        release=release,
        package=_deb_field(deb, "Package"),
        version=_deb_field(deb, "Version"),
        sha256=_sha256(deb),
        vmlinuz=str(vmlinuz),
        headers=headers,
        config=str(root / headers.lstrip("/") / ".config"),
        busybox=str(_busybox(directory, target, log)),
        modules=_modules_tree(directory, target, release, log, progress),
        image_sha256=_sha256(vmlinuz),
        image_size=vmlinuz.stat().st_size,
    )


PATH_FIELDS = ("vmlinuz", "config", "busybox", "modules")  # stored relative to the environment's directory


def _load(directory: Path, spec: dict[str, object]) -> BuildEnv | None:
    try:
        stamp = json.loads((directory / STAMP).read_text())
        kernels = {name: _resolved(Kernel(**k), directory) for name, k in stamp["kernels"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    files = [Path(p) for k in kernels.values() for p in (k.config, k.busybox)]
    trees = [Path(k.modules) for k in kernels.values() if k.modules]
    intact = stamp.get("recipe") == spec and all(p.is_file() for p in files) and all(map(_complete_tree, trees))
    return BuildEnv(str(spec["release"]), directory, kernels) if intact else None


def _resolved(kernel: Kernel, directory: Path) -> Kernel:
    """A stamp's kernel with its paths made absolute (an older stamp's absolute paths are kept)."""

    def absolute(value: str) -> str:
        return str(directory / value) if value else ""

    return replace(
        kernel,
        vmlinuz=absolute(kernel.vmlinuz),
        config=absolute(kernel.config),
        busybox=absolute(kernel.busybox),
        modules=absolute(kernel.modules),
    )


def _relative(kernel: Kernel, directory: Path) -> dict[str, object]:
    """A kernel as its stamp holds it: paths relative to the environment, so that the cache can move."""
    fields = asdict(kernel)
    for name in PATH_FIELDS:
        if fields[name]:
            fields[name] = str(Path(fields[name]).relative_to(directory))
    return fields


def image_problem(kernel: Kernel) -> str:
    """Why the cached kernel image cannot be trusted, or "" when its size and hash are those recorded."""
    path = Path(kernel.vmlinuz)
    if not kernel.image_sha256:
        return "no size and hash were recorded for it"
    if not path.is_file():
        return "it is missing"
    size = path.stat().st_size
    if size != kernel.image_size:
        return f"{size} bytes, {kernel.image_size} when fetched"
    if _sha256(path) != kernel.image_sha256:
        return "its sha256 differs from the one recorded when it was fetched"
    return ""


def cached(targets: list[Target], mirror: Mirror) -> BuildEnv | None:
    """The prepared environment of these sibling targets, or None if it must be made."""
    spec = recipe(targets, mirror)
    env = _load(env_directory(spec), spec)
    if env is None or any(t.name not in env.kernels for t in targets):
        return None
    return env


def prepare(targets: list[Target], mirror: Mirror, progress: Progress) -> BuildEnv:
    """The environment shared by ``targets`` (siblings: same release and pin), cached or made.

    What the cache holds is checked, not trusted: a kernel image whose size or
    hash is not the one recorded when it was fetched is fetched again.
    """
    directory = env_directory(recipe(targets, mirror))
    lock = directory.with_name(directory.name + ".lock")
    with locks.held(lock, f"the build environment {directory.name}", progress):
        env = cached(targets, mirror)
        if env is None:
            return _make(targets, mirror, directory, progress)
        progress(f"{env.release}: build environment cached in {directory}")
        env = _retry_modules(env, targets, mirror, progress)
        return _repair_images(env, targets, mirror, progress)


def _repair_images(env: BuildEnv, targets: list[Target], mirror: Mirror, progress: Progress) -> BuildEnv:
    """Fetch again every kernel image of the environment that is not as it was fetched."""
    kernels = dict(env.kernels)
    for target in targets:
        problem = image_problem(kernels[target.name])
        if problem:
            where = kernels[target.name].vmlinuz
            progress(f"{target.name}: the cached kernel image {where} cannot be used ({problem}): fetching it again")
            kernels[target.name] = _fetch_kernel(env.directory, target, env.directory / "prepare.log", progress)
    if kernels == env.kernels:
        return env
    _write_stamp(env.directory, recipe(targets, mirror), kernels)
    return BuildEnv(env.release, env.directory, kernels)


def _retry_modules(env: BuildEnv, targets: list[Target], mirror: Mirror, progress: Progress) -> BuildEnv:
    """Fetch again a modules tree an earlier preparation could not get (a failed download is not cached)."""
    missing = [t for t in targets if not env.kernels[t.name].modules]
    if not missing:
        return env
    kernels = dict(env.kernels)
    for target in missing:
        release = kernels[target.name].release
        tree = _modules_tree(env.directory, target, release, env.directory / "prepare.log", progress)
        kernels[target.name] = replace(kernels[target.name], modules=tree)
    _write_stamp(env.directory, recipe(targets, mirror), kernels)
    return BuildEnv(env.release, env.directory, kernels)


def _mounts_under(directory: Path) -> list[str]:
    """Mount points at or below ``directory`` (an interrupted mmdebstrap may leave /dev or /proc mounted)."""
    inside = str(directory.resolve())
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point == inside or point.startswith(inside + "/"):
            found.append(point)
    return found


def remove_tree(directory: Path) -> None:
    """Remove a half-made environment, never crossing into a file system still mounted in it."""
    for point in sorted(_mounts_under(directory), key=len, reverse=True):
        proc = interrupt.run(["umount", "--lazy", point])
        if proc.returncode != 0:
            raise BuildEnvError(f"{point} is still mounted and cannot be unmounted: {proc.stderr.strip()}")
    shutil.rmtree(directory)


def _write_stamp(directory: Path, spec: dict[str, object], kernels: dict[str, Kernel]) -> None:
    stamp = {"recipe": spec, "kernels": {n: _relative(k, directory) for n, k in kernels.items()}}
    tmp = directory / (STAMP + ".tmp")
    tmp.write_text(json.dumps(stamp, indent=2))
    os.replace(tmp, directory / STAMP)


def _make(targets: list[Target], mirror: Mirror, directory: Path, progress: Progress) -> BuildEnv:
    spec = recipe(targets, mirror)
    name = directory.name
    if os.geteuid() != 0:
        raise BuildEnvError(f"{name}: making a build chroot needs root (mmdebstrap --mode=root, chroot)")
    if directory.exists():
        progress(f"{name}: discarding an incomplete build environment in {directory}")
        remove_tree(directory)
    directory.mkdir(parents=True)
    log = directory / "prepare.log"
    progress(f"{name}: making the build chroot with mmdebstrap (about a minute); log: {log}")
    _mmdebstrap(spec, directory / "root", log, progress)
    kernels = {}
    for target in targets:
        interrupt.check()
        kernels[target.name] = _fetch_kernel(directory, target, log, progress)
    _write_stamp(directory, spec, kernels)
    for kernel in kernels.values():
        progress(f"{name}: {kernel.target} kernel {kernel.package} {kernel.version}")
    return BuildEnv(str(spec["release"]), directory, kernels)
