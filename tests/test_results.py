"""Results files: atomic, merged newest-first, and a readable table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kprobe_docs.store import results
from kprobe_docs.store.results import Record, ResultsError


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


def test_each_record_names_the_run_it_comes_from_even_when_two_files_share_a_run_id(tmp_path: Path) -> None:
    run: results.RunInfo = {"id": "r1", "started": "s", "finished": "f"}
    results.save(tmp_path / "20260101T000000Z-1.json", run, [_record("a", "t1", "pass")], {"t1": {}})
    results.save(tmp_path / "20260102T000000Z-1.json", run, [_record("b", "t1", "pass")], {"t1": {}})
    newest = results.newest(tmp_path)
    assert sorted(newest.runs) == ["r1", "r1 (20260102T000000Z-1.json)"]
    assert newest.runs_of([("a", "t1")]) == {"r1"}
    assert newest.runs_of([("b", "t1"), ("zz", "t9")]) == {"r1 (20260102T000000Z-1.json)"}
    assert newest.target_run["t1"] == "r1 (20260102T000000Z-1.json)"
    assert newest.runs["r1"].file == "20260101T000000Z-1.json" and newest.runs["r1"].records == 1


def test_a_run_id_made_to_clash_with_a_renamed_one_still_keeps_every_file(tmp_path: Path) -> None:
    for name, run_id in (("a", "X"), ("b", "X (c.json)"), ("c", "X")):
        results.save(tmp_path / f"{name}.json", {"id": run_id}, [_record(name, "t1", "pass")], {})
    newest = results.newest(tmp_path)
    assert sorted(r.file for r in newest.runs.values()) == ["a.json", "b.json", "c.json"]
    assert newest.runs[newest.record_run[("c", "t1")]].file == "c.json"


def test_corrupt_file_is_named_and_left_out(tmp_path: Path) -> None:
    results.save(tmp_path / "20260101T000000Z-1.json", {}, [_record("a", "t1", "pass")], {})
    (tmp_path / "20260102T000000Z-1.json").write_text('{"format": 1, "records": [')
    newest = results.newest(tmp_path)
    assert list(newest.records) == [("a", "t1")]
    assert len(newest.problems) == 1
    assert re.match(r".*20260102T000000Z-1\.json: not JSON \(", newest.problems[0])


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
        results.load_file(tmp_path / "20260101T000000Z-1.json")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"format":1,"records":[],"targets":{"debian-bookworm-amd64":"x"}}',
         r"targets\.debian-bookworm-amd64: Input should be an object \(got 'x'\)"),
        ('{"format":1,"run":{},"records":[{"sample":"a"}],"targets":{}}', r"records\.0\.target: Field required"),
        ('{"format":1,"run":{},"records":[],"targets":{"../x":{}}}', r"targets\.\.\./x\.\[key\]: String should match"),
        ('{"format":1,"run":{},"targets":{},"records":[{"sample":"a","target":"t","kind":"kmod","page":"p",'
         '"source_hash":"h","verdict":"maybe"}]}', r"records\.0\.verdict: Input should be 'pass', 'fail'"),
        ('{"format":1,"run":{},"targets":{},"records":[],"extra":1}', r"extra: Extra inputs are not permitted"),
        ("[1, 2]", r"not a kprobe-docs results file"),
    ],
)  # fmt: skip
def test_a_file_that_breaks_the_schema_is_named_with_its_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ResultsError, match=message):
        results.parse(text, "foreign.json")


def test_the_json_schema_describes_records_and_names() -> None:
    schema = results.schema()
    assert schema["title"] == "kprobe-docs results file"
    record = schema["$defs"]["Record"]
    assert record["properties"]["verdict"]["enum"] == ["pass", "fail", "not-claimed", "error", "skipped"]
    assert list(schema["properties"]["targets"]["patternProperties"]) == [results.NAME_PATTERN]


def test_the_published_schema_is_the_one_the_readers_check() -> None:
    published = Path(__file__).resolve().parent.parent / "docs" / "results.schema.json"
    assert json.loads(published.read_text()) == results.schema(), f"run: kprobe-docs results --schema > {published}"
