"""The LAVA runner proven with LAVA's own dispatcher: jobs exported, run by ``lava-run``, imported and judged.

Collected from ``verify/test_lava.md`` (select them with ``-k lava``):

- ``lava[<target>]``: every module and tracefs sample of the target, exported
  as a LAVA job, run by lava-run, imported: each gets the same verdict as
  the native runner gives it on the same kernel (its records carried over
  from the newest results when its source, kernel and harness are
  unchanged, else verified here), and LAVA is named in its provenance;
- ``lava_fault[debian-bookworm-amd64]``: a job whose first sample oopses:
  that sample fails for its reason, a follow-on job runs the others, and
  they pass;
- ``lava_infra[debian-bookworm-amd64]``: a job whose kernel file is gone:
  LAVA fails it, and its samples are infrastructure errors, none a failure.

The first of these tests exports, runs and imports everything, the targets
in parallel; the others read what that left.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from machines import CheckItem, Once

from kprobe_docs import system
from kprobe_docs.paths import project_root
from kprobe_docs.runners import lava
from kprobe_docs.runners.guests import Job, verify
from kprobe_docs.sources import extract
from kprobe_docs.sources.sample import Sample
from kprobe_docs.sources.targets import Catalog, load_catalog
from kprobe_docs.store import results
from kprobe_docs.store.results import Record

TARGETS = ("debian-bookworm-amd64", "debian-trixie-amd64", "debian-trixie-arm64")
FAULT_TARGET = "debian-bookworm-amd64"
FAULT_SAMPLES = ("fault_oops", "kprobe_example", "kretprobe_example", "kprobe_example_tracefs")
INFRA_SAMPLES = ("kprobe_example",)
PROGRESS: pytest.StashKey[Any] = pytest.StashKey()


@dataclass
class Outcome:
    """What one case left: the LAVA records and job logs of its target, and the native records to compare."""

    records: dict[str, Record]
    logs: list[Path]
    native: dict[str, Record]


class LavaRuns:
    """Every case exported, run and imported once, on the first test that needs one."""

    def __init__(self, config: pytest.Config, progress: Any) -> None:
        self.progress = progress
        self.root = project_root(Path(__file__).parent)
        self.work = Path(tempfile.mkdtemp(prefix="kprobe-docs-lava-"))
        config.add_cleanup(lambda: shutil.rmtree(self.work, ignore_errors=True))
        self.outcomes = Once(self._run_all)

    def outcome(self, case: str) -> Outcome:
        return self.outcomes.get()[case]

    def _samples(self, names: tuple[str, ...] = ()) -> list[tuple[Sample, Path]]:
        scratch = self.work / "fixtures"
        return extract.load_samples(self.root, list(names), scratch)

    def _export(self, case: str, targets: list[str], names: tuple[str, ...], catalog: Catalog) -> Path:
        out = self.work / case
        samples = self._samples(names) if names else [(s, d) for s, d in self._samples() if not _fixture(s.name)]
        lava.export(
            lava.Export(samples, catalog.select(targets), catalog, out, jobs=os.cpu_count() or 1), self.progress
        )
        return out

    def _import(self, out: Path) -> dict[str, dict[str, Record]]:
        known = {s.name: s for s, _ in self._samples()}
        found: dict[str, dict[str, Record]] = {}
        for record in lava.import_dirs(lava.job_dirs(out), known, out / "results.json"):
            found.setdefault(record.target, {})[record.sample] = record
        return found

    def _native(self, catalog: Catalog) -> dict[str, dict[str, Record]]:
        """The native runner's records of the module boots, carried over where unchanged since the newest run."""
        samples = [(s, d) for s, d in self._samples() if s.kind in lava.KINDS and not _fixture(s.name)]
        previous = results.newest(self.root / "results")
        job = Job(samples, catalog.select(list(TARGETS)), catalog, self.work / "native-build",
                  self.work / "native.json", os.cpu_count() or 1, previous)  # fmt: skip
        found: dict[str, dict[str, Record]] = {}
        for record in verify(job, self.progress).records:
            found.setdefault(record.target, {})[record.sample] = record
        return found

    def _run_all(self) -> dict[str, Outcome]:
        system.ensure(self.progress, lava=True)
        catalog = load_catalog()
        exports = {
            "lava": self._export("lava", list(TARGETS), (), catalog),
            "lava_fault": self._export("lava_fault", [FAULT_TARGET], FAULT_SAMPLES, catalog),
            "lava_infra": self._export("lava_infra", [FAULT_TARGET], INFRA_SAMPLES, catalog),
        }
        (exports["lava_infra"] / FAULT_TARGET / "vmlinuz").unlink()  # what a lab's broken artifact store does
        directories = [d for out in exports.values() for d in lava.job_dirs(out)]
        native_records = self._native(catalog)  # first: guests beside it would slow its samples past their limits
        lava.run(directories, self.progress, os.cpu_count() or 1)
        outcomes: dict[str, Outcome] = {}
        for case, out in exports.items():
            for target, records in self._import(out).items():
                logs = lava.job_logs(out / target)
                outcomes[f"{case}[{target}]"] = Outcome(records, logs, native_records.get(target, {}))
        return outcomes


def _fixture(name: str) -> bool:
    return re.match(r"^(fault|fixture)_", name) is not None


def _why(record: Record) -> str:
    return f"{record.sample}: {record.verdict}: {record.reason} (log: {record.console_log})"


class LavaItem(CheckItem):
    """One LAVA case on one target."""

    def __init__(self, *, runs: LavaRuns, case: str, target: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runs, self.case, self.target = runs, case, target

    def runtest(self) -> None:
        outcome = self.runs.outcome(f"{self.case}[{self.target}]")
        assert outcome.logs, "lava run left no job log"
        getattr(self, f"_{self.case}")(outcome)

    def _lava(self, outcome: Outcome) -> None:
        """The same verdict per sample as the native runner, every module and tracefs sample judged."""
        ran = {n: r for n, r in outcome.records.items() if r.kind in lava.KINDS}
        differ = [f"{_why(r)}; native: {_why(outcome.native[n])}" for n, r in ran.items()
                  if n in outcome.native and r.verdict != outcome.native[n].verdict]  # fmt: skip
        assert not differ, "LAVA and the native runner disagree:\n" + "\n".join(differ)
        assert set(ran) == set(outcome.native), f"samples judged: LAVA {sorted(ran)}, native {sorted(outcome.native)}"
        judged = [r for r in ran.values() if r.verdict != "not-claimed"]
        assert judged and all(r.verdict == "pass" for r in judged), "\n".join(map(_why, judged))
        booted = [r for r in judged if r.load != "not-run"]
        assert booted, "no sample ran in the job"
        provenance = booted[0].provenance
        assert provenance.get("runner") == "lava", provenance
        assert re.match(r"^\d{4}\.\d\d", provenance.get("lava_dispatcher", "")), provenance
        skipped = [r for r in outcome.records.values() if r.kind not in lava.KINDS and r.verdict != "not-claimed"]
        assert all(r.verdict == "skipped" and "9p" in r.reason for r in skipped), "\n".join(map(_why, skipped))

    def _lava_fault(self, outcome: Outcome) -> None:
        """The oops fails the sample that caused it; a follow-on job runs the rest, which pass."""
        from conftest import FAULT_REASONS

        oops = outcome.records["fault_oops"]
        assert oops.verdict == "fail" and re.search(FAULT_REASONS["fault_oops"], oops.reason), _why(oops)
        assert oops.console_log.endswith("job-1.log"), oops.console_log
        others = [outcome.records[n] for n in FAULT_SAMPLES[1:]]
        assert all(r.verdict == "pass" for r in others), "\n".join(map(_why, others))
        assert len(outcome.logs) == 2, f"one job, then one from the sample after the oops: {outcome.logs}"

    def _lava_infra(self, outcome: Outcome) -> None:
        """A job LAVA fails before the guest runs makes errors of the lab, never sample failures."""
        records = [outcome.records[n] for n in INFRA_SAMPLES]
        assert all(r.verdict == "error" for r in records), "\n".join(map(_why, records))
        said = re.compile(r"^not run: infrastructure error: LAVA ended job-1\.log before the sample ran \(\w+: "
                          r".*vmlinuz.* does not exist")  # fmt: skip
        assert all(said.match(r.reason) for r in records), "\n".join(map(_why, records))


class LavaFile(pytest.File):
    """``verify/test_lava.md``: the collection anchor of the LAVA tests."""

    def collect(self) -> Iterator[LavaItem]:
        runs = LavaRuns(self.config, self.config.stash.get(PROGRESS, print))
        cases = [("lava", t) for t in TARGETS] + [("lava_fault", FAULT_TARGET), ("lava_infra", FAULT_TARGET)]
        for case, target in cases:
            yield LavaItem.from_parent(self, name=f"{case}[{target}]", runs=runs, case=case, target=target)
