"""The agents' markers, as every runner follows them.

An agent (a guest's /init, or the host agent on a test machine) reports on
its output with lines the runner parses (see ``agent_lib.sh``):
``@@KD <event> <sample> <value>`` for an event and ``@@KL <sample> <section>
<line>`` for a line of captured output; any other line is the kernel's own.
``Follower`` turns them into one ``SampleRun`` per sample and knows the
deadline the agent must meet next.  Judging a run is ``check``'s job.
"""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..interrupt import check, end_group

BOOT_TIMEOUT = 180.0
GAP_TIMEOUT = 60.0  # from one sample's end to the next one's begin
SETUP_LIMIT = 900.0  # the most an agent may ask for a step before its samples (``@@KD setup - <seconds>``)
EXCERPT_LINES = 120
SECTION_LINES = 2000  # a sample's captured section (a log, its output) keeps its head and tail beyond this
# "@@KD <event> <name> <value>": values are single words; anything after them is kernel output.
STDERR_TAIL = 600  # characters of the process's own stderr kept when it fails
EVENT_RE = re.compile(r"@@KD (\S+) (\S+) ?([^\s\[]*)(.*)$")


@dataclass
class SampleRun:
    """What the agent reported for one sample, and how its part of the boot ended."""

    name: str
    events: dict[str, str] = field(default_factory=dict)
    sections: dict[str, list[str]] = field(default_factory=dict)
    console: list[str] = field(default_factory=list)  # untagged kernel output meanwhile
    outcome: str = "running"  # completed | crashed | hung | unbooted (the guest never ran it) | setup
    seconds: float = 0.0


@dataclass
class BootLog:
    runs: list[SampleRun] = field(default_factory=list)
    boot_seconds: list[float] = field(default_factory=list)
    failure: str = ""  # set when a boot never reached the agent: why, and never the samples' fault
    tail: list[str] = field(default_factory=list)
    facts: dict[str, list[str]] = field(default_factory=dict)  # per-boot facts, e.g. kprobes/enabled
    seconds: float = 0.0  # wall time of all the plan's boots


class Follower:
    """Turns console lines into SampleRuns and knows the current deadline."""

    def __init__(
        self, timeouts: dict[str, float], log: BootLog, boot_timeout: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.timeouts = timeouts
        self.log = log
        self.clock = clock  # a log read back afterwards (LAVA's) gives its records' times
        self.started = clock()
        self.deadline = self.started + boot_timeout
        self.booted = False
        self.finished = False
        self.in_setup = False  # between the agent's "setup" event and its next sample
        self.setup_seconds = 0.0  # the deadline granted to the last setup step
        self.ending = ""  # how the last sample or the boot ended: completed | hung | crashed
        self.current: SampleRun | None = None
        self.sample_started = 0.0
        self.last: list[str] = []
        self.lines = 0  # console lines seen in this boot
        self.exit_status: int | None = None  # QEMU's, when it ended by itself
        self.stderr = ""  # the tail of QEMU's own stderr

    def line(self, text: str) -> None:
        self.lines += 1
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
        now = self.clock()
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
            self.current.sections = {name: capped(lines) for name, lines in self.current.sections.items()}
            self.current.outcome = outcome
            self.current.seconds = round(self.clock() - self.sample_started, 2)
            self.log.runs.append(self.current)
            self.current = None


def capped(lines: list[str], limit: int = SECTION_LINES) -> list[str]:
    """A section's first and last ``limit / 2`` lines, saying how many were cut between."""
    if len(lines) <= limit:
        return lines
    half = limit // 2
    return [*lines[:half], f"[kprobe-docs: {len(lines) - 2 * half} lines cut here]", *lines[-half:]]


def follow(argv: list[str], follower: Follower, console: Path) -> None:
    """Run ``argv`` (a guest, or an agent) and feed its output to ``follower`` until it ends or misses a deadline.

    Every line goes to ``console`` too; the tail of the process's stderr is kept in ``follower.stderr``.  The
    process runs in a group of its own, ended with everything in it when it misses a deadline or on an interrupt.
    """
    stderr_path = console.with_suffix(".stderr")
    with (
        console.open("a") as out,
        stderr_path.open("w+") as stderr,
        subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True
        ) as proc,
    ):
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        selector = selectors.DefaultSelector()
        selector.register(fd, selectors.EVENT_READ)
        pending = b""
        try:
            while True:
                check()
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
                    follower.exit_status = proc.wait()
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
                end_group(proc)
            stderr.seek(0)
            follower.stderr = stderr.read()[-STDERR_TAIL:].strip()
