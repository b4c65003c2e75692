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
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kprobe_docs import extract, system
from kprobe_docs.paths import project_root
from kprobe_docs.results import Record
from kprobe_docs.runner import Job, run_id, verify
from kprobe_docs.sample import Sample, load_sample
from kprobe_docs.targets import Target, load_catalog

# Why each fault fixture must fail: a pattern its record's reason must match.
FAULT_REASONS = {
    "fault_oops": r"kernel (log|crashed): .*(Oops|BUG:|general protection|Unable to handle)",
    "fault_hang": r"^hang: no progress within \d+ s",
    "fault_build": r"^build failed: .*error",
    "fault_mismatch": r"^expected log line not found: ",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kprobe-docs")
    group.addoption("--target", "--targets", dest="kd_targets", default="default",
                    help="comma-separated targets, 'default' or 'all' ('host' is not available yet)")  # fmt: skip
    group.addoption("--samples", dest="kd_samples", default="", help="comma-separated sample names")
    group.addoption("--no-faults", dest="kd_no_faults", action="store_true", help="skip the fault fixtures")


def _names(value: str) -> list[str]:
    return [v for v in value.split(",") if v]


def pytest_configure(config: pytest.Config) -> None:
    if "host" in _names(config.getoption("kd_targets")):
        raise pytest.UsageError(
            "--target host (checking the running kernel of a real test machine) is not available yet; "
            "use QEMU targets: default, all, or names from 'kprobe-docs targets'"
        )


class Session:
    """Runs each target once and keeps its records for the tests."""

    def __init__(self, config: pytest.Config) -> None:
        self.root = project_root(Path(__file__).parent)
        self.catalog = load_catalog()
        self.targets = self.catalog.select(_names(config.getoption("kd_targets")))
        self.scratch = Path(tempfile.mkdtemp(prefix="kprobe-docs-fixtures-"))
        self.samples = self._samples(_names(config.getoption("kd_samples")), not config.getoption("kd_no_faults"))
        self.records: dict[str, dict[str, Record]] = {}
        self.results_file = self.root / "results" / f"{run_id()}.json"

    def _samples(self, names: list[str], faults: bool) -> list[tuple[Sample, Path]]:
        chosen: list[tuple[Sample, Path]] = []
        if faults:
            fixtures = extract.collect(self.root / "verify" / "fixtures", self.root)
            extract.write(fixtures, self.scratch)
            chosen += [(s, self.scratch / s.name) for s in fixtures]
        pages = sorted(d for d in (self.root / "samples").iterdir() if d.is_dir())
        chosen += [(load_sample(d), d) for d in pages]
        return [(s, d) for s, d in chosen if not names or s.name in names]

    def record(self, sample: str, target: Target) -> Record:
        """The record of (sample, target); the first call verifies every selected target, in parallel."""
        if not self.records:
            system.ensure(_progress)
            job = Job(
                self.samples,
                self.targets,
                self.catalog,
                self.root / "build",
                self.results_file,
                jobs=os.cpu_count() or 1,
            )
            for record in verify(job, _progress):
                self.records.setdefault(record.target, {})[record.sample] = record
        return self.records[target.name][sample]


def _progress(message: str) -> None:
    sys.stderr.write(message + "\n")  # one write: parallel targets do not interleave mid-line
    sys.stderr.flush()


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
