"""Per-architecture quirks, in one table: QEMU machine, console, cross build."""

from __future__ import annotations

from dataclasses import dataclass

HOST_ARCH = "amd64"  # the build chroots' architecture: the machines this project runs on


@dataclass(frozen=True)
class Arch:
    qemu: str  # system emulator
    machine: str
    console: str  # the serial console device the kernel writes to
    cpu: str  # TCG CPU model
    make_vars: tuple[str, ...]  # extra make variables for an out-of-tree build from the host chroot
    cross_packages: tuple[str, ...]  # what the host chroot needs to build for this arch


def apt_suffix(arch: str) -> str:
    """``:arm64`` for a foreign architecture's packages, nothing for the host's."""
    return "" if arch == HOST_ARCH else f":{arch}"


ARCHES = {
    "amd64": Arch("qemu-system-x86_64", "pc", "ttyS0", "max", (), ()),
    "arm64": Arch(
        "qemu-system-aarch64",
        "virt",
        "ttyAMA0",
        "max",
        ("ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-"),
        ("gcc-aarch64-linux-gnu",),
    ),
}
