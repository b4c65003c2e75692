"""Checks: does what the guest reported for a sample satisfy its contract?

Pure logic on the agent's report, so it is unit-tested without a guest.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Literal

from ..runners.markers import SampleRun
from ..sources.expectations import Context, applicable
from ..sources.sample import Sample
from ..store.results import Status

# Kernel log lines that fail any sample, whatever its own patterns say.
KERNEL_TROUBLE = re.compile(
    r"Oops|BUG:|WARNING:|Kernel panic|general protection fault|Unable to handle kernel"
    r"|kernel BUG at|soft lockup|rcu_(sched|preempt) self-detected stall|hung_task|invalid opcode"
)
# The line that says why a step failed, where a kind's tool says more after it: tracefs error_log's
# "trace_kprobe: error: Bad register" (then the command and a caret), bpftrace's "ERROR: ..." (then the source).
ERROR_LINES = {
    "tracefs": re.compile(r"^(\[[ 0-9.]+\] )?\w+: error: "),
    "bpftrace": re.compile(r"ERROR: "),
    "perf": re.compile(r"^\s*Error:\s"),
}
# /proc/sys/kernel/tainted bits that mean the kernel was damaged.
BAD_TAINT = {4: "M", 5: "B", 7: "D", 9: "W", 14: "L"}
TAINT_LETTERS = "PFSRMBUDAWCIOELKXTN"


@dataclass
class Verdict:
    load: Status = "ok"
    checks: Status = "ok"
    reason: str = ""  # the first failure, for people
    matched: list[str] = field(default_factory=list)  # the log lines that met ``expect``
    named: dict[str, str] = field(default_factory=dict)  # each named line that applied and held: what met it
    error: bool = False  # the sample never ran, through no fault of its own: it is not judged

    def fail(self, stage: str, reason: str) -> None:
        if stage == "load":
            self.load = "failed"
        else:
            self.checks = "failed"
        self.reason = self.reason or reason

    @property
    def passed(self) -> bool:
        return self.load == "ok" and self.checks == "ok"

    @property
    def verdict(self) -> Literal["pass", "fail", "error"]:
        return "error" if self.error else "pass" if self.passed else "fail"


def taint_flags(value: int) -> str:
    return "".join(letter for bit, letter in enumerate(TAINT_LETTERS) if value >> bit & 1)


def match_in_order(patterns: tuple[str, ...], lines: list[str]) -> tuple[list[str], str | None]:
    """Lines matching ``patterns`` one after another; the first pattern not met, if any."""
    matched: list[str] = []
    position = 0
    for pattern in patterns:
        regex = re.compile(pattern)
        hit = next((i for i in range(position, len(lines)) if regex.search(lines[i])), None)
        if hit is None:
            return matched, pattern
        matched.append(lines[hit])
        position = hit + 1
    return matched, None


# The steps of a run whose status must be 0, in order, with the section holding their output.
STEPS = {
    "kmod": (
        ("insmod1", "insmod", "insmod1"),
        ("rmmod1", "rmmod", "rmmod1"),
        ("insmod2", "second insmod", "insmod2"),
        ("rmmod2", "second rmmod", "rmmod2"),
    ),
    "bcc": (("attach", "attach", "out"), ("detach", "detach", "out")),
    "tracefs": (("script", "the script", "out"),),
    "bpftrace": (("run", "bpftrace", "out"),),
    "perf": (("script", "the script", "out"),),
}


# The agents' ``step`` events (the step a sample is in), as a hang reason names them.
STEP_NAMES = {
    "insmod1": "insmod (first load)",
    "trigger": "the trigger",
    "kprobes": "reading the kprobes list",
    "rmmod1": "rmmod (first unload)",
    "insmod2": "insmod (second load)",
    "rmmod2": "rmmod (second unload)",
    "attach": "attach",
    "detach": "detach",
    "script": "the script",
    "run": "bpftrace",
}


def output(run: SampleRun, kind: str) -> list[str]:
    """What the sample printed: the kernel log of the first load (module), the program's or script's output."""
    return run.sections.get("log1" if kind == "kmod" else "out", [])


def kernel_log(run: SampleRun) -> list[str]:
    """The kernel log of the sample's whole run (a bcc run's is apart from its output)."""
    return run.sections.get("log1", []) + run.sections.get("log2", []) + run.sections.get("dmesg", [])


def _rc(run: SampleRun, event: str) -> str:
    return run.events.get(event, "missing")


def _last_console(run: SampleRun, count: int = 3) -> str:
    lines = [" ".join(line.split()) for line in run.console if line.strip()][-count:]
    return "; last console lines: " + " | ".join(lines) if lines else "; nothing on the console"


def _check_outcome(run: SampleRun, sample: Sample, verdict: Verdict) -> None:
    if run.outcome == "hung":
        step = run.events.get("step", "")
        where = f"in {STEP_NAMES[step]}" if step in STEP_NAMES else "before its first step"
        verdict.fail("load", f"hang {where}: no progress within {sample.timeout} s{_last_console(run)}")
    elif run.outcome == "unbooted":
        why = run.console[0] if run.console else "no console output"
        verdict.fail("load", f"not run: {why}")
        verdict.error = True
    elif run.outcome == "setup":
        why = run.console[0] if run.console else "no console output"
        verdict.fail("load", f"the guest's setup before this sample failed: {why}")
    elif run.outcome == "crashed":
        trouble = next((line for line in run.console if KERNEL_TROUBLE.search(line)), "guest stopped")
        verdict.fail("load", f"kernel crashed: {trouble.strip()}")


def _last_words(lines: list[str], kind: str) -> str:
    """The line of a failed step's output that says why: its last, or the tool's first error line.

    A script that fails on a refused definition ends with tracefs ``error_log``, whose last line is a caret
    under the refused word; bpftrace follows its error with the source it points at.
    """
    said = [line.strip() for line in lines if line.strip()]
    pattern = ERROR_LINES.get(kind)
    errors = [line for line in said if pattern.search(line)] if pattern else []
    return (errors or said or [""])[0 if errors else -1]


def nearest_line(pattern: str, lines: list[str]) -> str | None:
    """The printed line most like a pattern no line met: what the reader sees instead, if anything is close."""
    said = [line.strip() for line in lines if line.strip()]
    close = difflib.get_close_matches(pattern, said, n=1, cutoff=0.5)
    return close[0] if close else None


def _check_steps(run: SampleRun, kind: str, verdict: Verdict) -> None:
    for event, what, section in STEPS[kind]:
        rc = _rc(run, event)
        if rc != "0":
            words = _last_words(run.sections.get(section, []), kind)
            detail = f": {words}" if words else ""
            verdict.fail("load", f"{what} {'did not run' if rc == 'missing' else 'exited ' + rc}{detail}")
            return


def _check_trouble(run: SampleRun, verdict: Verdict) -> None:
    """Oopses, warnings and damaging taint fail a sample whatever else it printed."""
    everything = kernel_log(run) + run.console
    trouble = next((line for line in everything if KERNEL_TROUBLE.search(line)), None)
    if trouble is not None:
        verdict.fail("checks", f"kernel log: {trouble.strip()}")
    taint = int(run.events.get("taint", "0") or 0)
    damage = "".join(letter for bit, letter in BAD_TAINT.items() if taint >> bit & 1)
    if damage:
        verdict.fail("checks", f"kernel tainted {damage} ({taint_flags(taint)})")


def _check_log(run: SampleRun, sample: Sample, context: Context, verdict: Verdict) -> None:
    printed = output(run, sample.kind)
    expected = applicable(sample.expect, context)
    verdict.matched, missing = match_in_order(tuple(e.pattern for e in expected), printed)
    verdict.named = {e.name: line for e, line in zip(expected, verdict.matched, strict=False) if e.name}
    if missing is not None:
        nearest = nearest_line(missing, printed)
        instead = f"; the nearest line printed: {nearest}" if nearest else ""
        verdict.fail("checks", f"expected log line not found: /{missing}/{instead}")
    for rejected in applicable(sample.reject, context):
        bad = next((line for line in printed + kernel_log(run) if re.search(rejected.pattern, line)), None)
        if bad is not None:
            verdict.fail("checks", f"rejected pattern /{rejected.pattern}/ matched: {bad.strip()}")
        elif rejected.name:
            verdict.named[rejected.name] = "(no line matched, as expected)"
    listing = run.sections.get("kprobes", [])
    for wanted in applicable(sample.listed, context):
        line = next((line for line in listing if re.search(wanted.pattern, line)), None)
        if line is None:
            verdict.fail("checks", f"kprobes/list has no line matching /{wanted.pattern}/")
        elif wanted.name:
            verdict.named[wanted.name] = line


def _check_leftovers(run: SampleRun, verdict: Verdict) -> None:
    """Something of the sample's still in the kernel after it: its module, a kprobe, a kprobe event."""
    left = [line for line in run.sections.get("leftover", []) if line.strip()]
    if left:
        more = f" (and {len(left) - 1} more)" if len(left) > 1 else ""
        verdict.fail("checks", f"leftover: {left[0].strip()}{more}")


def evaluate(run: SampleRun, sample: Sample, context: Context) -> Verdict:
    """The verdict on a sample's run on a target (``context``: what the target is, for conditional lines)."""
    verdict = Verdict()
    _check_outcome(run, sample, verdict)
    _check_trouble(run, verdict)
    if verdict.load == "ok":
        _check_steps(run, sample.kind, verdict)
    if verdict.load == "ok":
        _check_log(run, sample, context, verdict)
    _check_leftovers(run, verdict)
    if verdict.load != "ok" and verdict.checks == "ok":
        verdict.checks = "not-run"
    return verdict
