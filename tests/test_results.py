"""Results files: atomic, merged newest-first, and a readable table."""

from __future__ import annotations

from pathlib import Path

import pytest

from kprobe_docs import results
from kprobe_docs.results import Record, ResultsError


def _record(sample: str, target: str, verdict: str, **fields: object) -> Record:
    return Record(sample=sample, target=target, kind="kmod", page="p", source_hash="h", verdict=verdict, **fields)  # type: ignore[arg-type]


def test_newest_record_wins_per_sample_and_target(tmp_path: Path) -> None:
    first = [_record("a", "t1", "fail"), _record("b", "t1", "pass")]
    results.save(tmp_path / "20260101T000000Z-1.json", {}, first, {"t1": {"config": {"CONFIG_KPROBES": "y"}}})
    results.save(tmp_path / "20260102T000000Z-1.json", {}, [_record("a", "t1", "pass")], {"t2": {}})
    newest = results.newest(tmp_path)
    assert set(newest.targets) == {"t1", "t2"}
    merged = newest.records
    assert merged[("a", "t1")].verdict == "pass"
    assert merged[("b", "t1")].verdict == "pass"
    assert not list(tmp_path.glob(".*tmp"))


def test_corrupt_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "20260101T000000Z-1.json").write_text('{"format": 1, "records": [')
    with pytest.raises(ResultsError, match=r"20260101T000000Z-1\.json: not a readable results file"):
        results.newest(tmp_path)


def test_table_shows_build_load_checks_and_verdicts() -> None:
    records = [
        _record("a", "t1", "pass", build={"status": "ok"}, load="ok", checks="ok"),
        _record("a", "t2", "fail", build={"status": "ok"}, load="failed", checks="not-run"),
        _record("j", "t1", "pass", build={"status": "expected-failure"}),
        _record("j", "t2", "not-claimed"),
    ]
    text = results.table(records)
    lines = text.splitlines()
    assert lines[0].split() == ["sample", "t1", "t2", "verdict"]
    assert lines[2].split() == ["a", "ok/ok/ok", "ok/FAIL/-", "FAIL"]
    assert lines[3].split() == ["j", "xfail/-/-", "not", "claimed", "pass"]
    assert [r.sample for r in results.failures(records)] == ["a"]


def test_other_format_version_is_named(tmp_path: Path) -> None:
    (tmp_path / "20260101T000000Z-1.json").write_text('{"format": 99, "records": [], "targets": {}}')
    with pytest.raises(ResultsError, match=r"format 99, this version reads 1"):
        results.newest(tmp_path)
