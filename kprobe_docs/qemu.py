"""Runner stage: boot a target's kernel under QEMU and follow the agent.

One boot runs the whole plan.  The host reads the serial console, enforces a
deadline on the boot and on every sample, and when the guest panics, hangs or
powers off after a damaging sample, boots again from the next sample, so a
run always ends and never hangs.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .arches import ARCHES
from .paths import cache_dir
from .results import write_atomic

BOOT_TIMEOUT = 180.0
GAP_TIMEOUT = 60.0  # from one sample's end to the next one's begin
SETUP_LIMIT = 900.0  # the most an agent may ask for a step before its samples (``@@KD setup - <seconds>``)
EXCERPT_LINES = 120
KVM_PROBE_TIMEOUT = 40.0
# Set when the run is interrupted: guests running in worker threads are stopped too.
CANCEL = threading.Event()
BOOT_RETRIES = 2
# "@@KD <event> <name> <value>": values are single words; anything after them is kernel output.
EVENT_RE = re.compile(r"@@KD (\S+) (\S+) ?([^\s\[]*)(.*)$")


@dataclass
class SampleRun:
    """What the agent reported for one sample, and how its part of the boot ended."""

    name: str
    events: dict[str, str] = field(default_factory=dict)
    sections: dict[str, list[str]] = field(default_factory=dict)
    console: list[str] = field(default_factory=list)  # untagged kernel output meanwhile
    outcome: str = "running"  # completed | crashed | hung | unbooted
    seconds: float = 0.0


@dataclass
class BootLog:
    runs: list[SampleRun] = field(default_factory=list)
    boot_seconds: list[float] = field(default_factory=list)
    failure: str = ""  # set when a boot never reached the agent
    tail: list[str] = field(default_factory=list)
    facts: dict[str, list[str]] = field(default_factory=dict)  # per-boot facts, e.g. kprobes/enabled
    seconds: float = 0.0  # wall time of all the plan's boots


def qemu_version(arch: str) -> str:
    out = subprocess.run([ARCHES[arch].qemu, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0].strip()


def command(arch: str, accel: str, kernel: str, initrd: Path, start: int, extra: tuple[str, ...] = ()) -> list[str]:
    """The QEMU command line of a boot starting at sample ``start``; ``extra`` adds devices."""
    m = ARCHES[arch]
    # loglevel=3: only errors and worse reach the console, where they could cut into the
    # agent's lines (an RT kernel prints asynchronously); the agent reads the rest with dmesg.
    cmdline = f"console={m.console} loglevel=3 panic=-1 printk.time=1 kd.start={start}"
    cpu = "host" if accel == "kvm" else m.cpu
    # One host thread for all vCPUs under TCG: multi-threaded TCG races with the
    # kernel patching its own code (static keys, kprobes' int3) and oopses at boot.
    accel_option = "tcg,thread=single" if accel == "tcg" else accel
    return [
        m.qemu, "-machine", m.machine, "-accel", accel_option, "-cpu", cpu, "-smp", "2", "-m", "1024",
        "-no-user-config", "-nodefaults", "-display", "none", "-serial", "stdio", "-monitor", "none",
        "-no-reboot", "-nic", "none", "-kernel", kernel, "-initrd", str(initrd), "-append", cmdline, *extra,
    ]  # fmt: skip


class Follower:
    """Turns console lines into SampleRuns and knows the current deadline."""

    def __init__(self, timeouts: dict[str, float], log: BootLog, boot_timeout: float) -> None:
        self.timeouts = timeouts
        self.log = log
        self.started = time.monotonic()
        self.deadline = self.started + boot_timeout
        self.booted = False
        self.finished = False
        self.in_setup = False  # between the agent's "setup" event and its next sample
        self.setup_seconds = 0.0  # the deadline granted to the last setup step
        self.ending = ""  # how the last sample or the boot ended: completed | hung | crashed
        self.current: SampleRun | None = None
        self.sample_started = 0.0
        self.last: list[str] = []

    def line(self, text: str) -> None:
        self.last = [*self.last[-EXCERPT_LINES + 1 :], text]
        if text.startswith("@@KL "):
            _, owner, section, line = [*text.split(" ", 3), ""][:4]
            if owner == "-":
                self.log.facts.setdefault(section, []).append(line)
            elif self.current is not None and owner == self.current.name:
                self.current.sections.setdefault(section, []).append(line)
        elif text.startswith("@@KD "):
            match = EVENT_RE.match(text)
            if match is None:
                return
            event, name, value, rest = match.groups()
            self._event(event, name, value)
            if rest.strip():  # kernel output the console appended to the agent's line
                self.line(rest.strip())
        elif self.current is not None:
            self.current.console = [*self.current.console[-EXCERPT_LINES + 1 :], text]

    def _event(self, event: str, name: str, value: str) -> None:
        now = time.monotonic()
        if event == "booted":
            self.booted = True
            self.log.facts = {}
            self.log.boot_seconds.append(round(now - self.started, 2))
            self.deadline = now + GAP_TIMEOUT
        elif event == "setup":  # a long step before the next sample, e.g. compiling bcc programs
            self.in_setup = True
            self.setup_seconds = min(float(value or 0), SETUP_LIMIT)
            self.deadline = now + self.setup_seconds
        elif event == "begin":
            self.in_setup = False
            self.current = SampleRun(name)
            self.sample_started = now
            self.deadline = now + self.timeouts.get(name, GAP_TIMEOUT)
        elif event == "end" and self.current is not None:
            self.close("completed")
            self.deadline = now + GAP_TIMEOUT
        elif event == "done":
            self.finished = True
        elif self.current is not None:
            self.current.events[event] = value

    def close(self, outcome: str) -> None:
        self.ending = outcome
        if self.current is not None:
            self.current.outcome = outcome
            self.current.seconds = round(time.monotonic() - self.sample_started, 2)
            self.log.runs.append(self.current)
            self.current = None


def boot_once(
    argv: list[str], timeouts: dict[str, float], log: BootLog, console: Path, boot_timeout: float = BOOT_TIMEOUT
) -> Follower:
    """Run one boot, recording into ``log`` until the guest exits or misses a deadline."""
    follower = Follower(timeouts, log, boot_timeout)
    _follow(argv, follower, console)
    return follower


def _follow(argv: list[str], follower: Follower, console: Path) -> None:
    with (
        console.open("a") as out,
        subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        ) as proc,
    ):
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        selector = selectors.DefaultSelector()
        selector.register(fd, selectors.EVENT_READ)
        pending = b""
        try:
            while True:
                if CANCEL.is_set():
                    raise KeyboardInterrupt
                remaining = follower.deadline - time.monotonic()
                if remaining <= 0:
                    follower.close("hung")
                    return
                if not selector.select(timeout=min(remaining, 1.0)):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    if pending:  # the guest's last words, often a panic line without a newline
                        text = pending.decode("utf-8", "replace").rstrip("\r")
                        out.write(text + "\n")
                        follower.line(text)
                    follower.close("crashed")
                    return
                *lines, pending = (pending + chunk).split(b"\n")
                for raw in lines:
                    text = raw.decode("utf-8", "replace").rstrip("\r")
                    out.write(text + "\n")
                    follower.line(text)
        finally:
            selector.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()


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
            if failed_boots <= BOOT_RETRIES:  # the kernel died before the agent ran: no sample's fault
                progress(f"  boot {len(log.boot_seconds) + failed_boots} never reached the agent; booting again")
                continue
            said = [line for line in follower.last if line.startswith("kprobe-docs: ")]  # the agent's own why
            why = f": {said[-1].removeprefix('kprobe-docs: ')}" if said else f" (timeout {BOOT_TIMEOUT:.0f} s)"
            log.failure = f"the guest did not reach the agent in {failed_boots} boots{why}"
            log.tail = follower.last
            return log
        if follower.finished:
            return log
        if follower.in_setup:  # no sample ran, and booting again would only repeat the setup
            why = f"the agent's setup step before the samples {follower.ending} (limit {follower.setup_seconds:.0f} s)"
            log.runs += [SampleRun(name, console=[why, *follower.last], outcome="unbooted") for name in names[start:]]
            return log
        if len(log.runs) == before:  # the guest died between samples: blame the next one
            log.runs.append(SampleRun(names[start], console=follower.last, outcome="crashed"))
        start = names.index(log.runs[-1].name) + 1
    return log


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
