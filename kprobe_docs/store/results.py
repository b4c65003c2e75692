"""Results stage: one JSON file per run, one record per (sample, target).

Files are written atomically (temp file + rename) and never edited; readers
take, for each (sample, target), the record of the newest run that has one.

The format is a typed schema (pydantic): a file is checked against it when it
is written and whenever it is read, and a file that does not conform is named
with the field it breaks, never half-read.  Results may come from machines we
do not control, so names that end up in paths and links are restricted to a
safe alphabet and nothing else is trusted: renderers show every other string
as text.  ``schema()`` is the JSON Schema published with the docs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, StringConstraints, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic reads typing's TypedDict only from Python 3.12

from ..paths import cache_dir, kmod_dir

FORMAT = 1
# Sample, target and API probe names: they become file names and URLs of the site.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
# error: the run could not judge the sample; skipped: claimed, but this machine lacks what runs it (e.g. bcc)
Verdict = Literal["pass", "fail", "not-claimed", "error", "skipped"]
Status = Literal["ok", "failed", "not-run"]
STRICT = ConfigDict(extra="forbid", strict=True)


class ResultsError(ValueError):
    """A results file that cannot be read or written."""


@with_config(STRICT)
class Build(TypedDict, total=False):
    status: Literal["ok", "failed", "expected-failure", "unexpected-success"]
    seconds: float
    log: str  # path of the full build log
    problem: str  # its first error or warning line


@dataclass
class Record:
    __pydantic_config__ = STRICT

    sample: Name
    target: Name
    kind: Name
    page: str
    source_hash: str
    verdict: Verdict
    reason: str = ""
    build: Build = field(default_factory=lambda: Build())
    load: Status = "not-run"
    checks: Status = "not-run"
    matched: list[str] = field(default_factory=list)
    named: dict[str, str] = field(default_factory=dict)  # each named expectation that applied and held: its line
    log: list[str] = field(default_factory=list)  # what it printed: kernel log of the first load, a bcc twin's output
    log2: list[str] = field(default_factory=list)  # kernel log of the second load; of a bcc twin's run
    kprobes: list[str] = field(default_factory=list)  # /sys/kernel/debug/kprobes/list
    trigger: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)  # console excerpt when the guest crashed or hung
    console_log: str = ""  # path of the whole console log of the boot that ran it
    events: dict[str, str] = field(default_factory=dict)
    taint: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)
    reused_from: str = ""  # date of the run that produced this record, when carried over unchanged

    @property
    def key(self) -> tuple[str, str]:
        return self.sample, self.target


@with_config(STRICT)
class ApiProbe(TypedDict):
    """Whether one of kmod/api/'s compile probes built on a target."""

    available: bool
    what: str
    problem: str
    log: str


@with_config(STRICT)
class BccFacts(TypedDict, total=False):
    """What a bcc boot cost and ran with."""

    boot_seconds: list[float]
    seconds: float
    runner: list[str]  # what the twin runner said: versions, compile time
    versions: dict[str, str]  # guestroot.versions(): bcc, llvm, python packages of the guest's root


@with_config(STRICT)
class TargetFacts(TypedDict, total=False):
    """What a run records about a target besides its samples; empty when it could not be prepared."""

    release: str
    arch: Name
    flavour: str
    provenance: dict[str, str]
    config: dict[str, str]  # kprobes-related options as the kernel sets them
    debugfs: dict[str, list[str]]  # what the guest read under /sys/kernel/debug/kprobes at boot
    boot_seconds: list[float]
    api: dict[Name, ApiProbe]
    bcc: BccFacts


@with_config(STRICT)
class RunInfo(TypedDict, total=False):
    id: str
    started: str
    finished: str


@with_config(STRICT)
class ResultsFile(TypedDict):
    format: Literal[1]
    run: NotRequired[RunInfo]
    targets: dict[Name, TargetFacts]
    records: list[Record]


ADAPTER: TypeAdapter[ResultsFile] = TypeAdapter(ResultsFile)


def schema() -> dict[str, Any]:
    """The JSON Schema of a results file."""
    found = ADAPTER.json_schema()
    found["title"] = "kprobe-docs results file"
    found["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return found


# The stages whose code decides a verdict: what builds, what runs and what judges.
HARNESS = ("sources", "build", "runners", "judge")


def _harness_hash() -> str:
    digest = hashlib.sha256()
    package = resources.files("kprobe_docs")
    for stage in HARNESS:
        for name in sorted(p.name for p in package.joinpath(stage).iterdir() if p.name.endswith((".py", ".sh"))):
            digest.update(package.joinpath(stage, name).read_bytes())
    digest.update(package.joinpath("interrupt.py").read_bytes())
    for path in sorted(kmod_dir().rglob("*")):  # the build glue and the API probes
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@cache
def harness_hash() -> str:
    """Hash of the code that builds, boots and judges: a change re-verifies everything.

    Taken once, before the first run: the code that runs is the code that is hashed.
    """
    return _harness_hash()


def write_atomic(path: Path, data: Any) -> None:
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


def check_writable(directory: Path) -> None:
    """Refuse a results directory that cannot take a file, before any work is done."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".kd-write-check-"):
            pass
    except OSError as exc:
        raise ResultsError(
            f"the results directory {directory} is not writable ({exc.strerror}): "
            "fix its permissions or pass --results DIR"
        ) from exc


def fallback_path(path: Path) -> Path:
    """Where a results file goes when ``path`` cannot be written: the cache, else the temporary directory."""
    for directory in (cache_dir() / "unsaved-results", Path(tempfile.gettempdir()) / "kprobe-docs-unsaved-results"):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(directory, os.W_OK):
            return directory / path.name
    raise ResultsError(f"{path} cannot be written and no fallback directory is writable")


def describe(error: ValidationError, limit: int = 3) -> str:
    """The fields a file breaks, e.g. ``records.3.verdict: Input should be 'pass', ... (got 'maybe')``."""
    parts = []
    for problem in error.errors()[:limit]:
        where = ".".join(str(part) for part in problem["loc"]) or "the top level"
        got = repr(problem.get("input"))
        got = got if len(got) <= 60 else got[:57] + "..."
        parts.append(f"{where}: {problem['msg']} (got {got})")
    more = error.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def save(path: Path, run: RunInfo, records: list[Record], targets: dict[str, TargetFacts]) -> None:
    """Write a run: its records and, per target, facts read from the kernel and the guest."""
    data = {"format": FORMAT, "run": run, "targets": targets, "records": [asdict(r) for r in records]}
    try:
        ADAPTER.validate_json(json.dumps(data))
    except ValidationError as exc:  # a bug of ours: never write a file no reader accepts
        raise ResultsError(f"{path}: refusing to write a results file that breaks the schema: {describe(exc)}") from exc
    write_atomic(path, data)


@dataclass
class Run:
    records: list[Record]
    targets: dict[str, TargetFacts]
    run: RunInfo = field(default_factory=lambda: RunInfo())


def parse(text: str | bytes, name: str) -> Run:
    """A results file's text, checked against the schema; ``name`` is how errors call it."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ResultsError(f"{name}: not JSON ({exc}); move it away or delete it") from exc
    if not isinstance(data, dict) or "format" not in data:
        raise ResultsError(f"{name}: not a kprobe-docs results file (no 'format' field)")
    if data["format"] != FORMAT:
        raise ResultsError(f"{name}: format {data['format']!r}, this version reads {FORMAT}")
    try:
        checked = ADAPTER.validate_json(text)  # JSON mode: strict types, objects for the records
    except ValidationError as exc:
        raise ResultsError(f"{name}: not a valid results file: {describe(exc)}") from exc
    return Run(list(checked["records"]), dict(checked["targets"]), checked.get("run", RunInfo()))


def load_file(path: Path) -> Run:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ResultsError(f"{path}: cannot be read: {exc.strerror}") from exc
    return parse(text, str(path))


def result_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.json")) if directory.is_dir() else []


@dataclass
class RunSummary:
    """One results file as the pages cite it: its run, when, and which targets and records it holds."""

    id: str
    file: str
    started: str
    finished: str
    targets: dict[str, TargetFacts]
    records: int


@dataclass
class Newest:
    """For each (sample, target) and each target, what the newest run that has it says, and which run that is."""

    records: dict[tuple[str, str], Record] = field(default_factory=dict)
    targets: dict[str, TargetFacts] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # files left out, each with why
    runs: dict[str, RunSummary] = field(default_factory=dict)  # every file merged, by run id
    record_run: dict[tuple[str, str], str] = field(default_factory=dict)  # the run each record comes from
    target_run: dict[str, str] = field(default_factory=dict)  # the run each target's facts come from

    def runs_of(self, keys: Iterable[tuple[str, str]]) -> set[str]:
        return {self.record_run[key] for key in keys if key in self.record_run}


def _summary(path: Path, run: Run, known: dict[str, RunSummary]) -> RunSummary:
    """``path`` as the pages cite it; a run id that another file already uses is told apart by the file's name."""
    info = run.run
    run_id = base = info.get("id", path.stem)
    count = 1
    while run_id in known:
        run_id = f"{base} ({path.name})" if count == 1 else f"{base} ({path.name}, {count})"
        count += 1
    return RunSummary(run_id, path.name, info.get("started", "?"), info.get("finished", "?"), run.targets,
                      len(run.records))  # fmt: skip


def newest(directory: Path) -> Newest:
    """Merge the results files of ``directory``; one that cannot be read is left out and named in ``problems``."""
    merged = Newest()
    for path in result_files(directory):
        try:
            run = load_file(path)
        except ResultsError as exc:
            merged.problems.append(str(exc))
            continue
        summary = _summary(path, run, merged.runs)
        merged.runs[summary.id] = summary
        merged.records.update((r.key, r) for r in run.records)
        merged.record_run.update((r.key, summary.id) for r in run.records)
        for name, facts in run.targets.items():  # a run that records fewer facts (a LAVA import) keeps the others
            merged.targets[name] = TargetFacts(**{**merged.targets.get(name, {}), **facts})
        merged.target_run.update((name, summary.id) for name in run.targets)
    return merged


def import_file(path: Path, directory: Path, known: dict[str, str]) -> list[str]:
    """Merge a results file from another machine into ``directory``; what was done, a line each.

    The file is checked against the schema first (a file that fails is
    refused whole).  Records of samples this checkout does not define are
    left out; records of an older source of a sample are kept, and pages show
    them as such.  The run keeps its own id, so it sorts among the others by
    the time it ran.
    """
    run = load_file(path)
    kept = [r for r in run.records if r.sample in known]
    said = [f"{path}: {len(kept)} record(s) of {len({r.target for r in kept})} target(s)"]
    unknown = sorted({r.sample for r in run.records} - set(known))
    if unknown:
        said.append(f"  left out, no sample of that name here: {', '.join(unknown)}")
    stale = sorted({r.sample for r in kept if r.source_hash != known[r.sample]})
    if stale:
        said.append(f"  from an older source of the sample, shown as such: {', '.join(stale)}")
    name = run.run.get("id", "") or path.stem
    target = directory / f"{re.sub(r'[^A-Za-z0-9._+-]', '-', name)}.json"
    if target.exists() and target.resolve() != path.resolve():
        target = target.with_name(f"{target.stem}-imported.json")
    save(target, run.run, kept, {t: f for t, f in run.targets.items() if any(r.target == t for r in kept)})
    said.append(f"  imported as {target}")
    return said


CELL = {"ok": "ok", "failed": "FAIL", "expected-failure": "xfail", "unexpected-success": "FAIL", "not-run": "-"}


def cell(record: Record | None) -> str:
    """``build/load/checks`` for a table cell."""
    if record is None:
        return "no result"
    if record.verdict == "not-claimed":
        return "not claimed"
    if record.verdict == "error":
        return "ERROR"
    if record.verdict == "skipped":
        return "skipped"
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
        verdicts = {c.verdict for c in cells if c is not None}
        rows.append([sample, *(cell(c) for c in cells), "FAIL" if "fail" in verdicts else _overall(verdicts)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    legend = "cells: build/load/checks (xfail: fails to build, as its page says;"
    legend += " *: unchanged since an earlier run, result carried over; ERROR: the run could not judge it)"
    return "\n".join(lines) + f"\n\n{legend}\n"


def _overall(verdicts: set[Verdict]) -> str:
    return "ERROR" if "error" in verdicts else "pass"


def failures(records: list[Record]) -> list[Record]:
    """Records that did not pass where claimed: failures and errors."""
    return [r for r in records if r.verdict in ("fail", "error")]


def reasons(records: list[Record], limit: int = 160) -> str:
    """One line per failure: where, its verdict, the first failing step's reason, and the full log's path."""
    lines = []
    for record in failures(records):
        reason = " ".join(record.reason.split()) or "no reason recorded"
        reason = reason if len(reason) <= limit else reason[: limit - 3] + "..."
        where = record.console_log if record.build.get("status") == "ok" else record.build.get("log", "")
        log = f"\n    log: {where}" if where else ""
        lines.append(f"  {record.sample} on {record.target}: {record.verdict.upper()}: {reason}{log}")
    return "\n".join(lines)
