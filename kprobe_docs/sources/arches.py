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
    "i386": Arch(
        "qemu-system-i386",
        "pc",
        "ttyS0",
        # not max: its AMD family-6 model makes a 32-bit SMP kernel warn "This combination of AMD
        # processors is not suitable for SMP" (arch/x86/kernel/cpu/amd.c), tainting it at boot
        "qemu32",
        ("ARCH=i386", "CROSS_COMPILE=i686-linux-gnu-"),
        ("gcc-i686-linux-gnu",),
    ),
    "arm64": Arch(
        "qemu-system-aarch64",
        "virt",
        "ttyAMA0",
        "max",
        ("ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-"),
        ("gcc-aarch64-linux-gnu",),
    ),
}
