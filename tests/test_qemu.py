"""Booting: QEMU itself failing is reported as that, with its exit status and stderr, never as a timeout."""

from __future__ import annotations

import time
from pathlib import Path

from kprobe_docs.judge.check import evaluate
from kprobe_docs.runners import markers, qemu
from kprobe_docs.runners.initramfs import make_initramfs
from kprobe_docs.sources.expectations import Context
from kprobe_docs.sources.sample import make_sample

CONTEXT = Context("amd64", (6, 1), {})


def test_a_kernel_image_qemu_cannot_load_fails_at_once_and_names_qemu(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"MZ" + b"\0" * 4094)  # what a truncated image looks like: a header and nothing
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"\x7fELF")
    initrd = tmp_path / "initrd.cpio"
    make_initramfs(busybox, [], initrd)
    said: list[str] = []
    started = time.monotonic()
    log = qemu.run_plan(
        lambda start: qemu.command("amd64", "tcg", str(kernel), initrd, start),
        ["demo"],
        {"demo": 60.0},
        tmp_path / "console.log",
        said.append,
    )
    assert time.monotonic() - started < 30  # no boot timeout was waited for
    assert log.failure.startswith("QEMU exited with status 1 before the guest printed anything: qemu")
    assert log.tail[-1].startswith("QEMU stderr: qemu")
    assert "timeout" not in log.failure
    assert not any("booting again" in line for line in said)  # the same command would fail the same way
    sample = make_sample("demo", {"kind": "kmod", "expect": "x"}, "int x;\n", "docs/p.md", 1)
    verdict = evaluate(markers.SampleRun("demo", console=[log.failure], outcome="unbooted"), sample, CONTEXT)
    assert verdict.verdict == "error"  # not charged to the sample
    assert verdict.reason == f"not run: {log.failure}"


def test_a_section_keeps_its_head_and_tail() -> None:
    lines = [f"line {i}" for i in range(5000)]
    kept = markers.capped(lines)
    assert len(kept) == markers.SECTION_LINES + 1
    assert kept[0] == "line 0" and kept[-1] == "line 4999"
    assert kept[markers.SECTION_LINES // 2] == "[kprobe-docs: 3000 lines cut here]"
