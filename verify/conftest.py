"""The verification suite: one test per (sample, target), id ``<sample>[<target>]``.

The first test that runs verifies every selected target, in parallel, one
boot per target for all its samples; the records go to a results file under
``results/`` like ``kprobe-docs verify`` writes.  The fault fixtures of
``verify/fixtures/`` run in the same boots, before the good samples, and their
tests assert that each fails for its own reason.

Options: ``--target``/``--targets`` (names, ``default``, ``all``),
``--samples`` (names), ``--no-faults``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kprobe_docs import extract, system
from kprobe_docs.cli import names as _names
from kprobe_docs.cli import progress
from kprobe_docs.paths import project_root
from kprobe_docs.results import Record
from kprobe_docs.runner import Job, run_id, verify
from kprobe_docs.sample import Sample
from kprobe_docs.targets import Target, load_catalog

# Why each fault fixture must fail: a pattern its record's reason must match.
FAULT_REASONS = {
    "fault_oops": r"kernel (log|crashed): .*(Oops|BUG:|general protection|Unable to handle)",
    "fault_hang": r"^hang: no progress within \d+ s",
    "fault_build": r"^build failed: .*error",
    "fault_mismatch": r"^expected log line not found: ",
    "fault_bcc_compile": r"^attach exited 1: BPF compile error: line \d+ of BPF_TEXT: use of undeclared identifier",
    "fault_bcc_attach": r"^attach exited 1: Exception: Failed to attach BPF program",
    "fault_bcc_poll": r"^detach exited 1: RuntimeError: fixture: finish\(\) fails before detaching",
    "fault_bcc_hang": r"^hang: no progress within 20 s",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kprobe-docs")
    group.addoption("--target", "--targets", dest="kd_targets", default="default",
                    help="comma-separated targets, 'default' or 'all' ('host' is not available yet)")  # fmt: skip
    group.addoption("--samples", dest="kd_samples", default="", help="comma-separated sample names")
    group.addoption("--no-faults", dest="kd_no_faults", action="store_true", help="skip the fault fixtures")


def pytest_configure(config: pytest.Config) -> None:
    if "host" in _names(config.getoption("kd_targets")):
        raise pytest.UsageError(
            "--target host (checking the running kernel of a real test machine) is not available yet; "
            "use QEMU targets: default, all, or names from 'kprobe-docs targets'"
        )


class Session:
    """Runs the verification once and keeps its records for the tests."""

    def __init__(self, config: pytest.Config) -> None:
        self.root = project_root(Path(__file__).parent)
        self.catalog = load_catalog()
        self.targets = self.catalog.select(_names(config.getoption("kd_targets")))
        scratch = Path(tempfile.mkdtemp(prefix="kprobe-docs-fixtures-"))
        config.add_cleanup(lambda: shutil.rmtree(scratch, ignore_errors=True))
        fixtures = None if config.getoption("kd_no_faults") else scratch
        self.samples = extract.load_samples(self.root, _names(config.getoption("kd_samples")), fixtures)
        self.records: dict[str, dict[str, Record]] | None = None
        self.error: BaseException | None = None
        self.results_file = self.root / "results" / f"{run_id()}.json"

    def record(self, sample: str, target: Target) -> Record:
        """The record of (sample, target); the first call verifies every selected target, in parallel."""
        if self.error is not None:
            raise self.error
        if self.records is None:
            try:
                system.ensure(progress)
                cores = os.cpu_count() or 1
                job = Job(self.samples, self.targets, self.catalog, self.root / "build", self.results_file, jobs=cores)
                self.records = {}
                for record in verify(job, progress):
                    self.records.setdefault(record.target, {})[record.sample] = record
            except Exception as exc:  # every test of this run reports it, none runs it again
                self.error = exc
                raise
        return self.records[target.name][sample]


def _excerpt(record: Record) -> str:
    lines = record.console or record.log or record.log2
    tail = "\n".join(lines[-25:])
    return f"{record.reason}\nbuild log: {record.build.get('log', '-')}\n{tail}"


class SampleItem(pytest.Item):
    def __init__(self, *, sample: Sample, target: Target, session_state: Session, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sample = sample
        self.target = target
        self.state = session_state

    def runtest(self) -> None:
        record = self.state.record(self.sample.name, self.target)
        if record.verdict == "not-claimed":
            pytest.skip(f"{self.sample.name} does not claim {self.target.name} "
                        f"(kernels {self.sample.kernels.text}, arches {' '.join(self.sample.arches)})")  # fmt: skip
        reason = FAULT_REASONS.get(self.sample.name)
        if reason is None:
            assert record.verdict == "pass", _excerpt(record)
        else:
            assert record.verdict == "fail", f"{self.sample.name} passed; it must fail: {reason}"
            assert re.search(reason, record.reason), f"failed for another reason: {_excerpt(record)}"

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, self.name


class SuiteFile(pytest.File):
    def collect(self) -> Iterator[SampleItem]:
        state = Session(self.config)
        for target in state.targets:
            for sample, _ in state.samples:
                yield SampleItem.from_parent(
                    self, name=f"{sample.name}[{target.name}]", sample=sample, target=target, session_state=state
                )


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> SuiteFile | None:
    if file_path.name == "samples.md" and file_path.parent.name == "verify":
        return SuiteFile.from_parent(parent, path=file_path)
    return None
