"""Results stage: one JSON file per run, one record per (sample, target).

Files are written atomically (temp file + rename) and never edited; readers
take, for each (sample, target), the record of the newest run that has one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

FORMAT = 1


class ResultsError(ValueError):
    """A results file that cannot be read."""


@dataclass
class Record:
    sample: str
    target: str
    kind: str
    page: str
    source_hash: str
    verdict: str  # pass | fail | not-claimed
    reason: str = ""
    build: dict[str, Any] = field(default_factory=dict)  # status, seconds, log, problem
    load: str = "not-run"
    checks: str = "not-run"
    matched: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)  # what it printed: kernel log of the first load, a bcc twin's output
    log2: list[str] = field(default_factory=list)  # kernel log of the second load; of a bcc twin's run
    kprobes: list[str] = field(default_factory=list)  # /sys/kernel/debug/kprobes/list
    trigger: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)  # console excerpt when the guest crashed or hung
    events: dict[str, str] = field(default_factory=dict)
    taint: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)
    reused_from: str = ""  # date of the run that produced this record, when carried over unchanged

    @property
    def key(self) -> tuple[str, str]:
        return self.sample, self.target


def _harness_hash() -> str:
    digest = hashlib.sha256()
    package = resources.files("kprobe_docs")
    harness = (
        "agent.sh", "agent_bcc.sh", "arches.py", "build.py", "buildenv.py", "check.py", "guest.py", "guestroot.py",
        "qemu.py", "runner.py", "twin_runner.py",
    )  # fmt: skip
    for name in harness:
        digest.update(package.joinpath(name).read_bytes())
    kmod = Path(__file__).resolve().parent.parent / "kmod"  # the build glue and the API probes
    for path in sorted(kmod.rglob("*")):
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# Taken once, when the pipeline is loaded: the code that runs is the code that is hashed.
HARNESS = _harness_hash()


def harness_hash() -> str:
    """Hash of the code that builds, boots and judges: a change re-verifies everything."""
    return HARNESS


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # an interrupt included: no half-written file stays behind
        tmp.unlink(missing_ok=True)
        raise


def save(path: Path, run: dict[str, Any], records: list[Record], targets: dict[str, Any]) -> None:
    """Write a run: its records and, per target, facts read from the kernel and the guest."""
    data = {"format": FORMAT, "run": run, "targets": targets, "records": [asdict(r) for r in records]}
    write_atomic(path, data)


@dataclass
class Run:
    records: list[Record]
    targets: dict[str, Any]


def load_file(path: Path) -> Run:
    try:
        data = json.loads(path.read_text())
        version = data.get("format")
        run = None if version != FORMAT else Run([Record(**r) for r in data["records"]], dict(data["targets"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ResultsError(f"{path}: not a readable results file ({exc}); move it away or delete it") from exc
    if run is None:
        raise ResultsError(f"{path}: format {version!r}, this version reads {FORMAT}")
    return run


def result_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.json")) if directory.is_dir() else []


@dataclass
class Newest:
    """For each (sample, target) and each target, what the newest run that has it says."""

    records: dict[tuple[str, str], Record] = field(default_factory=dict)
    targets: dict[str, Any] = field(default_factory=dict)


def newest(directory: Path) -> Newest:
    merged = Newest()
    for path in result_files(directory):
        run = load_file(path)
        merged.records.update((r.key, r) for r in run.records)
        merged.targets.update(run.targets)
    return merged


CELL = {"ok": "ok", "failed": "FAIL", "expected-failure": "xfail", "unexpected-success": "FAIL", "not-run": "-"}


def cell(record: Record | None) -> str:
    """``build/load/checks`` for a table cell."""
    if record is None:
        return "no result"
    if record.verdict == "not-claimed":
        return "not claimed"
    build = CELL.get(record.build.get("status", "not-run"), "?")
    reused = "*" if record.reused_from else ""
    return f"{build}/{CELL.get(record.load, '?')}/{CELL.get(record.checks, '?')}{reused}"


def table(records: list[Record]) -> str:
    """A samples x targets table of build/load/checks, with a verdict per sample."""
    samples = list(dict.fromkeys(r.sample for r in records))
    targets = list(dict.fromkeys(r.target for r in records))
    by_key = {r.key: r for r in records}
    rows = [["sample", *targets, "verdict"]]
    for sample in samples:
        cells = [by_key.get((sample, t)) for t in targets]
        failed = any(c is not None and c.verdict == "fail" for c in cells)
        rows.append([sample, *(cell(c) for c in cells), "FAIL" if failed else "pass"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    legend = "cells: build/load/checks (xfail: fails to build, as its page says;"
    legend += " *: unchanged since an earlier run, result carried over)"
    return "\n".join(lines) + f"\n\n{legend}\n"


def failures(records: list[Record]) -> list[Record]:
    return [r for r in records if r.verdict == "fail"]
