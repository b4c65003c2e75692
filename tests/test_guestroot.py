"""The bcc guest's root: which modules mount it, read from a kernel's own modules tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from kprobe_docs.build import environment as buildenv
from kprobe_docs.runners import guestroot, initramfs
from kprobe_docs.sources.targets import find_mirror, load_catalog, system_sources


def test_depends_reads_the_modinfo_field() -> None:
    elf = b"\x7fELF...\0license=GPL\0depends=9pnet,netfs,fs-cache\0retpoline=Y\0"
    assert guestroot.depends(elf) == ["9pnet", "netfs", "fs_cache"]
    assert guestroot.depends(b"\0depends=\0name=virtio\0") == []


def _cached_tree(name: str) -> Path:
    """The target's modules tree, from the cache; the target is prepared first if it is not there yet."""
    catalog = load_catalog()
    env = buildenv.prepare(catalog.siblings(catalog.targets[name]), find_mirror(system_sources()), print)
    return Path(env.kernels[name].modules)


@pytest.mark.parametrize("target", ["debian-bookworm-amd64", "debian-trixie-amd64"])
def test_load_order_puts_dependencies_first_and_skips_builtins(target: str) -> None:
    order = guestroot.load_order(_cached_tree(target))
    names = [name for name, _ in order]
    assert names[-1] == "9p"
    for position, (name, elf) in enumerate(order):
        assert elf.startswith(b"\x7fELF"), name
        assert all(dep in names[:position] for dep in guestroot.depends(elf)), name


def test_kernel_modules_for_modprobe_come_with_a_modules_dep() -> None:
    """What a sample's ``kernel-modules`` puts in a module boot: busybox's modprobe reads modules.dep."""
    tree = initramfs.ModulesTree(_cached_tree("debian-bookworm-amd64"), "6.1.0-test")
    entries = {entry.path: entry.data for entry in initramfs.kernel_module_entries(tree, ("dummy", "9p"))}
    assert entries["lib/modules/6.1.0-test/dummy.ko"].startswith(b"\x7fELF")
    lines = dict(line.split(":", 1) for line in entries["lib/modules/6.1.0-test/modules.dep"].decode().splitlines())
    assert lines["dummy.ko"] == ""
    needed = lines["9p.ko"].split()
    assert "9pnet.ko" in needed and "netfs.ko" in needed
    assert all(f"lib/modules/6.1.0-test/{name}" in entries for name in needed)
