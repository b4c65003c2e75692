"""The root filesystem of a bcc guest: the release's build chroot, shared read-only over virtio-9p.

Debian kernels build 9p and (before 6.12) virtio-pci as modules, so the
initramfs of a bcc boot loads them before it can mount the root.  Which
modules, and in which order, is read from the kernel package's own modules
tree: each module's ``depends=`` field, followed down to modules the kernel
has built in (``modules.builtin``).
"""

from __future__ import annotations

import gzip
import lzma
import re
import subprocess
from pathlib import Path

# What mounting the shared root needs: the 9p filesystem, its virtio transport and the PCI device.
NEEDED = ("virtio_pci", "9pnet_virtio", "9p")
MOUNT_TAG = "kdroot"
# cache=loose: the root is read-only, so the guest may cache freely (a trixie bcc boot: 50 s instead of 81 s).
MOUNT_OPTIONS = "trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro"
DEPENDS_RE = re.compile(rb"(?:^|\0)depends=([^\0]*)\0")
LLVM_RE = re.compile(r"\b(libllvm[0-9.]+)\b")


class GuestRootError(RuntimeError):
    """The kernel lacks what mounting the shared root needs."""


def module_key(name: str) -> str:
    """Module names compare with ``-`` and ``_`` alike, as modprobe does."""
    return name.replace("-", "_")


def _module_files(tree: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in (tree / "kernel").rglob("*.ko*"):
        name = path.name.split(".ko", 1)[0]
        files[module_key(name)] = path
    return files


def _builtin(tree: Path) -> set[str]:
    lines = (tree / "modules.builtin").read_text().split()
    return {module_key(Path(line).name.split(".ko", 1)[0]) for line in lines}


def decompressed(path: Path) -> bytes:
    """A module file's ELF bytes, whatever compression the package used."""
    try:
        return _decompressed(path)
    except (OSError, EOFError, lzma.LZMAError) as exc:  # gzip.BadGzipFile is an OSError
        raise GuestRootError(f"cannot read the module {path}: {exc}") from exc


def _decompressed(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko.zst"):
        proc = subprocess.run(["zstd", "-dc"], input=data, capture_output=True)
        if proc.returncode != 0:
            raise GuestRootError(f"cannot decompress {path} (is zstd installed?): {proc.stderr.decode().strip()}")
        return proc.stdout
    return data


def depends(elf: bytes) -> list[str]:
    """The ``depends=`` field of a module's .modinfo: the modules it needs loaded first."""
    match = DEPENDS_RE.search(elf)
    if match is None or not match[1]:
        return []
    return [module_key(name) for name in match[1].decode().split(",") if name]


def load_order(tree: Path, needed: tuple[str, ...] = NEEDED) -> list[tuple[str, bytes]]:
    """(name, ELF bytes) of the modules to insmod, dependencies first; built-in ones are skipped."""
    if not (tree / "modules.builtin").is_file():
        raise GuestRootError(f"the kernel's modules tree was not found (no {tree / 'modules.builtin'})")
    files, builtin = _module_files(tree), _builtin(tree)
    order: list[tuple[str, bytes]] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name in builtin:
            return
        seen.add(name)
        if name not in files:
            raise GuestRootError(f"module {name} is neither in {tree} nor built into the kernel")
        elf = decompressed(files[name])
        for dependency in depends(elf):
            visit(dependency)
        order.append((name, elf))

    for name in needed:
        visit(module_key(name))
    return order


def _installed(root: Path, packages: list[str]) -> dict[str, str]:
    """Versions of ``packages`` as the root's own dpkg database has them; a package not installed is left out."""
    argv = ["dpkg-query", f"--admindir={root / 'var/lib/dpkg'}", "-W", "-f=${Package} ${Version} ${Depends}\n"]
    proc = subprocess.run([*argv, *packages], capture_output=True, text=True)
    found = {}
    for line in proc.stdout.splitlines():
        name, _, rest = line.partition(" ")
        found[name] = rest
    return found


def versions(root: Path) -> dict[str, str]:
    """What a bcc, bpftrace or perf verdict depends on: python3-bpfcc, the LLVM its libbcc is linked with,
    python3, bpftrace and linux-perf.

    Read from the root's dpkg database, e.g. ``{"bcc": "python3-bpfcc 0.26.0+ds-1",
    "llvm": "libllvm14 1:14.0.6-12", "python": "python3 3.11.2-1+b1", "bpftrace": "bpftrace 0.17.0-1",
    "perf": "linux-perf 6.1.158-1"}``;
    "?" where a package is missing.
    """
    found = _installed(root, ["python3-bpfcc", "libbpfcc", "python3", "bpftrace", "linux-perf"])
    llvm = LLVM_RE.search(found.get("libbpfcc", ""))
    llvm_found = _installed(root, [llvm[1]]) if llvm else {}

    def show(package: str, where: dict[str, str]) -> str:
        return f"{package} {where[package].split(' ', 1)[0]}" if package in where else "?"

    return {
        "bcc": show("python3-bpfcc", found),
        "llvm": show(llvm[1], llvm_found) if llvm else "?",
        "python": show("python3", found),
        "bpftrace": show("bpftrace", found),
        "perf": show("linux-perf", found),
    }


def qemu_options(root: Path) -> list[str]:
    """Share ``root`` read-only with the guest: a run cannot change the cached chroot."""
    path = str(root).replace(",", ",,")  # QEMU's option syntax escapes a comma by doubling it
    return [
        "-fsdev", f"local,id={MOUNT_TAG},path={path},security_model=passthrough,readonly=on",
        "-device", f"virtio-9p-pci,fsdev={MOUNT_TAG},mount_tag={MOUNT_TAG}",
    ]  # fmt: skip
