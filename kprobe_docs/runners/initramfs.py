"""Guest stage: the initramfs that one boot of a target runs.

A module boot's initramfs holds a static busybox, the POSIX-sh agent as
``/init`` and, under ``/kd/<name>/``, each sample's module, parameters and
trigger, or its tracefs script (``<name>.sh``), which the same boot runs,
and the kernel's own modules that the samples load themselves (``kernel-modules``),
under ``/lib/modules/<release>/`` with a ``modules.dep`` for busybox's modprobe.
A bcc boot's holds busybox, the bcc agent as ``/init``, the modules that
mount the shared root (``/modules/``), the twin runner and, under
``/kd/<name>/``, each twin and its trigger.  ``/kd/plan`` lists the samples
in run order; the kernel command line says where to start, so a reboot
after a crash reuses the same image.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..sources.sample import Sample
from . import guestroot


@dataclass(frozen=True)
class Entry:
    path: str  # inside the image, no leading slash
    data: bytes
    mode: int


def _header(ino: int, mode: int, size: int, name: bytes) -> bytes:
    fields = [ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name) + 1, 0]
    text = "070701" + "".join(f"{value:08x}" for value in fields)
    return text.encode() + name + b"\0"


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def cpio_newc(entries: list[Entry]) -> bytes:
    """An uncompressed ``newc`` cpio archive; parent directories are added."""
    directories = sorted({str(Path(e.path).parent) for e in entries} - {"."})
    every = sorted({d for p in directories for d in _parents(p)})
    items = [Entry(d, b"", stat.S_IFDIR | 0o755) for d in every] + entries
    out = bytearray()
    for ino, entry in enumerate([*items, Entry("TRAILER!!!", b"", 0)], start=1):
        head = _header(ino, entry.mode, len(entry.data), entry.path.encode())
        out += head + _pad(len(head)) + entry.data + _pad(len(entry.data))
    return bytes(out)


def _parents(path: str) -> list[str]:
    parts = Path(path).parts
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _file(path: str, data: bytes, executable: bool = False) -> Entry:
    return Entry(path, data, stat.S_IFREG | (0o755 if executable else 0o644))


def _packaged(name: str) -> bytes:
    return resources.files("kprobe_docs.runners").joinpath(name).read_bytes()


def _common_entries(busybox: Path, agent: str, plan: list[Sample]) -> list[Entry]:
    """What every boot's initramfs holds: busybox, the agent as /init, the plan and each sample's trigger."""
    return [
        _file("bin/busybox", busybox.read_bytes(), executable=True),
        _file("init", _packaged(agent), executable=True),
        _file("kd/lib.sh", _packaged("agent_lib.sh")),
        _file("kd/plan", "".join(f"{s.name}\n" for s in plan).encode()),
        *(_file(f"kd/{s.name}/trigger", (s.trigger + "\n").encode(), executable=True) for s in plan),
    ]


def sample_entries(sample: Sample, artifact: Path) -> list[Entry]:
    """A module and its parameters, or a tracefs script, as ``/kd/<name>/`` holds them."""
    base = f"kd/{sample.name}"
    if sample.kind == "tracefs":
        return [_file(f"{base}/{sample.filename}", artifact.read_bytes(), executable=True)]
    return [
        _file(f"{base}/{sample.name}.ko", artifact.read_bytes()),
        _file(f"{base}/params", (" ".join(sample.params) + "\n").encode()),
    ]


@dataclass(frozen=True)
class ModulesTree:
    """A kernel's unpacked ``lib/modules/<release>`` and that release."""

    path: Path
    release: str


def kernel_module_entries(tree: ModulesTree, names: tuple[str, ...]) -> list[Entry]:
    """The kernel's modules ``names``, with those they need, and the ``modules.dep`` that modprobe reads.

    modules.dep lists each module's dependencies, the one loaded last first, as depmod writes them.
    """
    order = guestroot.load_order(tree.path, names)
    needs = {name: guestroot.depends(elf) for name, elf in order}

    def below(name: str) -> list[str]:
        found: list[str] = []
        for dependency in needs.get(name, []):
            found += [d for d in [dependency, *below(dependency)] if d not in found]
        return found

    base = f"lib/modules/{tree.release}"
    dep = "".join(f"{name}.ko:{''.join(f' {d}.ko' for d in below(name) if d in needs)}\n" for name, _ in order)
    return [*(_file(f"{base}/{name}.ko", elf) for name, elf in order), _file(f"{base}/modules.dep", dep.encode())]


def make_initramfs(
    busybox: Path, plan: list[tuple[Sample, Path]], out: Path, modules: ModulesTree | None = None
) -> None:
    """Write the initramfs running ``plan`` (sample, built module or checked tracefs script) in order to ``out``.

    ``modules`` is the kernel's modules tree, needed when a sample of the plan names ``kernel-modules``.
    """
    entries = _common_entries(busybox, "agent.sh", [s for s, _ in plan])
    for sample, module in plan:
        entries += sample_entries(sample, module)
    wanted = tuple(dict.fromkeys(name for s, _ in plan for name in s.kernel_modules))
    if wanted:
        if modules is None:
            raise guestroot.GuestRootError(f"the kernel's modules tree is missing: {' '.join(wanted)} cannot be loaded")
        entries += kernel_module_entries(modules, wanted)
    _write(out, entries)


def _write(out: Path, entries: list[Entry]) -> None:
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(cpio_newc(entries))
    os.replace(tmp, out)


# How a bcc boot runs its twins: one runner compiling them all at once (what verification does), the same
# runner compiling each alone (the benchmark's baseline), or each twin's own main(), as a reader runs it.
BCC_MODES = ("shared", "compile-each", "main")


def make_bcc_initramfs(
    busybox: Path, modules_tree: Path, plan: list[Sample], out: Path, bcc_mode: str = "shared"
) -> None:
    """Write the initramfs of a bcc boot running the twins of ``plan`` in order to ``out``.

    ``bcc_mode`` (see ``BCC_MODES``) says how the bcc twins run.
    """
    order = guestroot.load_order(modules_tree)
    entries = [
        *_common_entries(busybox, "agent_bcc.sh", plan),
        _file("modules/order", "".join(f"{name}\n" for name, _ in order).encode()),
        _file("modules/options", f"{guestroot.MOUNT_OPTIONS}\n".encode()),
        *(_file(f"modules/{name}.ko", elf) for name, elf in order),
        _file("kd/twin_runner.py", _packaged("twin_runner.py")),
        _file("kd/bcc-mode", f"{bcc_mode}\n".encode()),
        *(_file(f"kd/{s.name}/{s.filename}", s.code.encode()) for s in plan),
    ]
    _write(out, entries)
