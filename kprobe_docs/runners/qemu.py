"""Runner stage: boot a target's kernel under QEMU and follow the agent.

One boot runs the whole plan.  The host reads the serial console, enforces a
deadline on the boot and on every sample, and when the guest panics, hangs or
powers off after a damaging sample, boots again from the next sample, so a
run always ends and never hangs.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from ..paths import cache_dir
from ..sources.arches import ARCHES
from ..store.results import write_atomic
from .markers import BOOT_TIMEOUT, BootLog, Follower, SampleRun, follow

KVM_PROBE_TIMEOUT = 40.0
BOOT_RETRIES = 2


def qemu_version(arch: str) -> str:
    out = subprocess.run([ARCHES[arch].qemu, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0].strip()


def command(arch: str, accel: str, kernel: str, initrd: Path, start: int, extra: tuple[str, ...] = ()) -> list[str]:
    """The QEMU command line of a boot starting at sample ``start``; ``extra`` adds devices."""
    m = ARCHES[arch]
    return [
        m.qemu, *machine_options(arch, accel), "-m", "1024",
        "-no-user-config", "-nodefaults", "-display", "none", "-serial", "stdio", "-monitor", "none",
        "-no-reboot", "-nic", "none", "-kernel", kernel, "-initrd", str(initrd), "-append", kernel_cmdline(arch, start),
        *extra,
    ]  # fmt: skip


def kernel_cmdline(arch: str, start: int) -> str:
    """The guest kernel's command line: the agent starts at sample ``start``."""
    # loglevel=3: only errors and worse reach the console, where they could cut into the
    # agent's lines (an RT kernel prints asynchronously); the agent reads the rest with dmesg.
    return f"console={ARCHES[arch].console} loglevel=3 panic=-1 printk.time=1 kd.start={start}"


def machine_options(arch: str, accel: str) -> list[str]:
    """The emulated machine, CPU and accelerator: the same for every runner that boots a target."""
    m = ARCHES[arch]
    cpu = "host" if accel == "kvm" else m.cpu
    # One host thread for all vCPUs under TCG: multi-threaded TCG races with the
    # kernel patching its own code (static keys, kprobes' int3) and oopses at boot.
    accel_option = "tcg,thread=single" if accel == "tcg" else accel
    return ["-machine", m.machine, "-accel", accel_option, "-cpu", cpu, "-smp", "2"]


def boot_once(
    argv: list[str], timeouts: dict[str, float], log: BootLog, console: Path, boot_timeout: float = BOOT_TIMEOUT
) -> Follower:
    """Run one boot, recording into ``log`` until the guest exits or misses a deadline."""
    follower = Follower(timeouts, log, boot_timeout)
    follow(argv, follower, console)
    return follower


def run_plan(
    argv_for: Callable[[int], list[str]],
    names: list[str],
    timeouts: dict[str, float],
    console: Path,
    progress: Callable[[str], None],
) -> BootLog:
    """Boot until every sample in ``names`` ran once (or a boot fails outright)."""
    started = time.monotonic()
    log = _run_plan(argv_for, names, timeouts, console, progress)
    log.seconds = round(time.monotonic() - started, 1)
    return log


def _run_plan(
    argv_for: Callable[[int], list[str]],
    names: list[str],
    timeouts: dict[str, float],
    console: Path,
    progress: Callable[[str], None],
) -> BootLog:
    log = BootLog()
    console.write_text("")
    start = 0
    failed_boots = 0
    while start < len(names):
        progress(f"  boot {len(log.boot_seconds) + 1}: samples {start + 1}..{len(names)}")
        before = len(log.runs)
        follower = boot_once(argv_for(start), timeouts, log, console)
        if not follower.booted:
            failed_boots += 1
            qemu_failed = follower.exit_status not in (None, 0) and follower.lines == 0
            if not qemu_failed and failed_boots <= BOOT_RETRIES:  # the kernel died before the agent ran
                progress(f"  boot {len(log.boot_seconds) + failed_boots} never reached the agent; booting again")
                continue
            log.failure = _unbooted(follower, failed_boots)
            log.tail = [*follower.last, *(f"QEMU stderr: {line}" for line in follower.stderr.splitlines())]
            return log
        if follower.finished:
            return log
        if follower.in_setup:  # no sample ran, and booting again would only repeat the setup
            why = f"the agent's setup step before the samples {follower.ending} (limit {follower.setup_seconds:.0f} s)"
            log.runs += [SampleRun(name, console=[why, *follower.last], outcome="setup") for name in names[start:]]
            return log
        if len(log.runs) == before:  # the guest died between samples: blame the next one
            log.runs.append(SampleRun(names[start], console=follower.last, outcome="crashed"))
        start = names.index(log.runs[-1].name) + 1
    return log


def _unbooted(follower: Follower, boots: int) -> str:
    """Why no boot reached the agent, as it happened: QEMU failing, the kernel stopping, or a timeout."""
    said = [line for line in follower.last if line.startswith("kprobe-docs: ")]  # the agent's own why
    stderr = f": {' '.join(follower.stderr.split())}" if follower.stderr else " (nothing on its stderr)"
    if follower.exit_status not in (None, 0) and follower.lines == 0:
        return f"QEMU exited with status {follower.exit_status} before the guest printed anything{stderr}"
    if said:
        return f"the guest did not reach the agent in {boots} boots: {said[-1].removeprefix('kprobe-docs: ')}"
    if follower.exit_status is not None:
        last = next((line for line in reversed(follower.last) if line.strip()), "no console output")
        return f"the guest stopped before the agent started, in {boots} boots; its last console line: {last.strip()}"
    return f"the guest did not reach the agent within {BOOT_TIMEOUT:.0f} s, in {boots} boots"


def accelerator(arch: str, probe: Callable[[str], bool]) -> str:
    """``kvm`` only where a probe boot under KVM worked on this machine, else ``tcg``.

    ``KPROBE_DOCS_ACCEL`` forces a choice.  The probe's verdict is cached per
    host kernel and QEMU version, so a machine whose KVM hangs pays once.
    """
    forced = os.environ.get("KPROBE_DOCS_ACCEL")
    if forced:
        return forced
    if arch != "amd64" or os.uname().machine != "x86_64" or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    key = f"{os.uname().release} {qemu_version(arch)}"
    record = cache_dir() / "kvm-probe.json"
    try:
        verdicts = json.loads(record.read_text())
    except (OSError, ValueError):
        verdicts = {}
    if key not in verdicts:
        verdicts[key] = probe("kvm")
        write_atomic(record, verdicts)
    return "kvm" if verdicts[key] else "tcg"
