"""The initramfs: a real cpio archive the kernel (and cpio(1)) can read."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kprobe_docs.runners.initramfs import make_initramfs
from kprobe_docs.sources.sample import make_sample


def test_initramfs_lists_agent_busybox_and_samples(tmp_path: Path) -> None:
    if shutil.which("cpio") is None:
        pytest.skip("cpio(1) is not installed: kprobe-docs setup installs it (as root)")
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"\x7fELF fake")
    module = tmp_path / "demo.ko"
    module.write_bytes(b"module")
    sample = make_sample("demo", {"kind": "kmod", "expect": "x", "params": "a=1", "trigger": "cat /x"}, "c", "p", 1)
    image = tmp_path / "initrd.cpio"
    make_initramfs(busybox, [(sample, module)], image)
    listing = subprocess.run(["cpio", "-itv"], input=image.read_bytes(), capture_output=True, check=True)
    names = [line.split()[-1] for line in listing.stdout.decode().splitlines()]
    assert {
        "init",
        "bin/busybox",
        "kd/lib.sh",
        "kd/plan",
        "kd/demo/demo.ko",
        "kd/demo/params",
        "kd/demo/trigger",
    } <= set(names)
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-id", "--quiet"], input=image.read_bytes(), cwd=out, check=True)
    assert (out / "kd" / "plan").read_text() == "demo\n"
    assert (out / "kd" / "demo" / "params").read_text() == "a=1\n"
    assert (out / "init").read_bytes().startswith(b"#!/bin/busybox sh")
    assert (out / "kd" / "demo" / "trigger").stat().st_mode & 0o111


def test_tracefs_script_rides_in_the_module_boot(tmp_path: Path) -> None:
    if shutil.which("cpio") is None:
        pytest.skip("cpio(1) is not installed: kprobe-docs setup installs it (as root)")
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"\x7fELF fake")
    script = tmp_path / "demo_tracefs.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    sample = make_sample("demo_tracefs", {"kind": "tracefs", "expect": "hi"}, script.read_text(), "p", 1)
    image = tmp_path / "initrd.cpio"
    make_initramfs(busybox, [(sample, script)], image)
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-id", "--quiet"], input=image.read_bytes(), cwd=out, check=True)
    placed = out / "kd" / "demo_tracefs" / "demo_tracefs.sh"
    assert placed.read_text() == "#!/bin/sh\necho hi\n"
    assert not (out / "kd" / "demo_tracefs" / "params").exists()
    assert "run_script" in (out / "init").read_text()
