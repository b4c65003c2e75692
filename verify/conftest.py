"""The verification suite: one test per (sample, target), id ``<sample>[<target>]``.

The first test that runs verifies every selected target, in parallel, one
boot per target for all its samples; the records go to a results file under
``results/`` like ``kprobe-docs verify`` writes.  The fault fixtures of
``verify/fixtures/`` run in the same boots, before the good samples, and their
tests assert that each fails for its own reason.

Options: ``--target``/``--targets`` (names, ``default``, ``all``; the
suite checks every claim, so ``all`` unless told otherwise), ``--samples``
(names), ``--no-faults``.  The run's progress is shown as it happens.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import lava_jobs
import machines
import pytest

from kprobe_docs import interrupt, system
from kprobe_docs.paths import project_root
from kprobe_docs.runners import host
from kprobe_docs.runners.guests import Job, run_id, verify
from kprobe_docs.sources import extract
from kprobe_docs.sources.sample import Sample
from kprobe_docs.sources.targets import Target, load_catalog
from kprobe_docs.store.results import Record

FIXTURE_RE = re.compile(r"^(fault|fixture)_")
# Why each fault fixture must fail: a pattern its record's reason must match.
FAULT_REASONS = {
    "fault_oops": r"kernel (log|crashed): .*(Oops|BUG:|general protection|Unable to handle)",
    "fault_hang": r"^hang in insmod \(first load\): no progress within \d+ s",
    "fault_build": r"^build failed: .*error",
    "fault_mismatch": (
        r"^expected log line not found: /fault_mismatch: every hit was logged\$/; "
        r"the nearest line printed: .*fault_mismatch: (planted|removed) "
    ),
    "fault_warn": r"^kernel log: .*WARNING: .* at .*fault_warn\.c:\d+ fault_warn_init",
    "fault_panic": r"^kernel crashed: .*Kernel panic - not syncing: fault_panic: a deliberate panic",
    "fault_exit_hang": r"^hang in rmmod \(first unload\): no progress within 20 s; last console lines: .*exit sleeps",
    "fault_init_fails": r"^insmod exited \d+: .*No such device",
    "fault_build_warning": r"^build failed: .*warning: unused variable",
    "fault_modpost": r"^build failed: .*modpost.*kd_no_such_function.*undefined",
    "fault_leftover": r"^leftover: kprobe_events entry still defined: p:kprobes/kd_leftover kernel_clone",
    "fault_tracefs_leftover": r"^leftover: kprobe_events entry still defined: p:kd/fault_left \S+ \(and 3 more",
    "fault_tracefs_stale_error": r"^the script exited 1: fault_tracefs_stale_error: a check after the refusal fails$",
    "fault_hostile_output": r"^hang in the trigger: no progress within 20 s; last console lines: .*<script>alert",
    "fault_bcc_compile": r"^attach exited 1: BPF compile error: line \d+ of BPF_TEXT: use of undeclared identifier",
    "fault_bcc_attach": r"^attach exited 1: Exception: Failed to attach BPF program",
    "fault_bcc_poll": r"^detach exited 1: RuntimeError: fixture: finish\(\) fails before detaching",
    "fault_bcc_hang": r"^hang in attach: no progress within 20 s",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kprobe-docs")
    group.addoption("--target", "--targets", dest="kd_targets", default="all",
                    help="comma-separated targets, 'default' or 'all' (the default: every target)")  # fmt: skip
    group.addoption("--samples", dest="kd_samples", default="", help="comma-separated sample names")
    group.addoption("--no-faults", dest="kd_no_faults", action="store_true", help="skip the fault fixtures")
    group.addoption("--sign-key", dest="kd_sign_key", help="--target host: sign the modules with this key")
    group.addoption("--sign-cert", dest="kd_sign_cert", help="--target host: the certificate of --sign-key")
    group.addoption("--resume", dest="kd_resume", action="store_true", help="--target host: resume a crashed run")


def pytest_configure(config: pytest.Config) -> None:
    targets = _names(config.getoption("kd_targets"))
    if "host" in targets and targets != ["host"]:
        raise pytest.UsageError("--target host runs alone: give the QEMU targets in a run of their own")
    if bool(config.getoption("kd_sign_key")) != bool(config.getoption("kd_sign_cert")):
        raise pytest.UsageError("give both --sign-key and --sign-cert")


def _names(value: str) -> list[str]:
    """Comma-separated names of an option; empty for none."""
    return [name.strip() for name in value.split(",") if name.strip()]


class Progress:
    """The run's progress on the terminal while pytest captures the tests' output (it takes minutes)."""

    def __init__(self, config: pytest.Config) -> None:
        self.capture = config.pluginmanager.getplugin("capturemanager")
        self.lock = threading.Lock()  # parallel targets report from worker threads

    def __call__(self, message: str) -> None:
        with self.lock:
            if self.capture is None:
                sys.stderr.write(message + "\n")
                return
            with self.capture.global_and_fixture_disabled():
                sys.stderr.write(message + "\n")
                sys.stderr.flush()


class Session:
    """Runs the verification once and keeps its records for the tests."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.progress = Progress(config)
        self.root = project_root(Path(__file__).parent)
        self.catalog = load_catalog()
        names = _names(config.getoption("kd_targets"))
        self.on_host = names == ["host"]
        self.targets = [host.inspect().target] if self.on_host else self.catalog.select(names)
        scratch = Path(tempfile.mkdtemp(prefix="kprobe-docs-fixtures-"))
        config.add_cleanup(lambda: shutil.rmtree(scratch, ignore_errors=True))
        chosen = _names(config.getoption("kd_samples"))
        # On a real machine a fixture that crashes the kernel runs only when named.
        faults = not config.getoption("kd_no_faults") and (not self.on_host or any(FIXTURE_RE.match(n) for n in chosen))
        self.samples = extract.load_samples(self.root, chosen, scratch if faults else None)
        self.records: dict[str, dict[str, Record]] | None = None
        self.error: BaseException | None = None
        self.results_file = self.root / "results" / f"{run_id()}.json"

    def _verify(self) -> list[Record]:
        if self.on_host:
            key, cert = self.config.getoption("kd_sign_key"), self.config.getoption("kd_sign_cert")
            signing = host.Signing(Path(key), Path(cert)) if key else None
            plan = host.Plan(self.samples, self.results_file, self.root / "build" / "host", signing)
            plan = replace(plan, resume=bool(self.config.getoption("kd_resume")))
            return host.verify_host(plan, self.progress).records
        system.ensure(self.progress)
        cores = os.cpu_count() or 1
        job = Job(self.samples, self.targets, self.catalog, self.root / "build", self.results_file, jobs=cores)
        return verify(job, self.progress).records

    def record(self, sample: str, target: Target) -> Record:
        """The record of (sample, target); the first call verifies every selected target, in parallel."""
        if self.error is not None:
            raise self.error
        if self.records is None:
            try:
                self.records = {}
                with interrupt.handled():  # SIGTERM or SIGHUP end the guests as Ctrl-C does
                    done = self._verify()
                for record in done:
                    self.records.setdefault(record.target, {})[record.sample] = record
            except Exception as exc:  # every test of this run reports it, none runs it again
                self.error = exc
                raise
        return self.records[target.name][sample]


def _excerpt(record: Record) -> str:
    lines = record.console or record.log or record.log2
    tail = "\n".join(lines[-25:])
    return f"{record.reason}\nbuild log: {record.build.get('log', '-')}\n{tail}"


class SampleItem(machines.CheckItem):
    def __init__(self, *, sample: Sample, target: Target, session_state: Session, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sample = sample
        self.target = target
        self.state = session_state

    def runtest(self) -> None:
        record = self.state.record(self.sample.name, self.target)
        if record.verdict == "skipped":
            pytest.skip(f"{self.sample.name} is skipped on {self.target.name}: {record.reason}")
        if record.verdict == "not-claimed":
            pytest.skip(f"{self.sample.name} does not claim {self.target.name} "
                        f"(kernels {self.sample.kernels.text}, arches {' '.join(self.sample.arches)})")  # fmt: skip
        reason = FAULT_REASONS.get(self.sample.name)
        if reason is None:
            assert record.verdict == "pass", _excerpt(record)
            if self.sample.name == "fixture_flood":  # 1 MiB printed, 16 KiB kept at each end
                assert "[kprobe-docs: 1015808 bytes cut here]" in record.trigger
                assert sum(map(len, record.trigger)) < 40_000
        else:
            assert record.verdict == "fail", f"{self.sample.name} passed; it must fail: {reason}"
            assert re.search(reason, record.reason), f"failed for another reason: {_excerpt(record)}"


class SuiteFile(pytest.File):
    def collect(self) -> Iterator[SampleItem]:
        state = Session(self.config)
        for target in state.targets:
            for sample, _ in state.samples:
                yield SampleItem.from_parent(
                    self, name=f"{sample.name}[{target.name}]", sample=sample, target=target, session_state=state
                )


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.File | None:
    if file_path.parent.name != "verify":
        return None
    if file_path.name == "samples.md":
        return SuiteFile.from_parent(parent, path=file_path)
    if file_path.name == "test_lava.md":
        parent.config.stash[lava_jobs.PROGRESS] = Progress(parent.config)
        return lava_jobs.LavaFile.from_parent(parent, path=file_path)
    if file_path.name == "test_machines.md":
        parent.config.stash[machines.PROGRESS] = Progress(parent.config)
        return machines.MachinesFile.from_parent(parent, path=file_path)
    return None
