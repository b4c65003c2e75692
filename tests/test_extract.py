"""Extraction: pages are the single source of samples/."""

from __future__ import annotations

from pathlib import Path

import pytest

from kprobe_docs.sources import extract
from kprobe_docs.sources.sample import SampleError

ROOT = Path(__file__).resolve().parent.parent

PAGE = """# A page

Some prose.

::::{tab-set}
:::{tab-item} Module
```{kprobe-sample} nested_demo
---
kind: kmod
expect: |
  nested_demo: loaded
---
int x;
```
:::
:::{tab-item} bcc
```{kprobe-sample} nested_demo_bcc
---
kind: bcc
expect: |
  nested_demo_bcc: attached
---
x = 1
```
:::
::::
"""


def test_samples_dir_is_in_sync_with_docs() -> None:
    samples = extract.collect(ROOT / "docs", ROOT)
    assert samples, "the pages hold no samples"
    assert extract.differences(samples, ROOT / "samples") == []


def test_sample_nested_in_other_directives_is_found_with_its_line() -> None:
    sample, twin = extract.samples_in_text(PAGE, "docs/nested.md")
    assert (sample.name, sample.line, sample.code) == ("nested_demo", 7, "int x;\n")
    assert (twin.name, twin.kind, twin.line, twin.code) == ("nested_demo_bcc", "bcc", 17, "x = 1\n")


def test_unclosed_options_block_is_an_error_at_its_line() -> None:
    text = "# T\n\n```{kprobe-sample} broken\n---\nkind: kmod\nint x;\n```\n"
    with pytest.raises(SampleError, match=r"^docs/b.md:3: options block opened with --- is never closed"):
        extract.samples_in_text(text, "docs/b.md")


def test_bad_yaml_is_an_error_at_its_line() -> None:
    text = "# T\n\n```{kprobe-sample} broken\n---\nkind: [kmod\n---\nint x;\n```\n"
    with pytest.raises(SampleError, match=r"^docs/b.md:3: options block is not YAML"):
        extract.samples_in_text(text, "docs/b.md")


def test_write_then_check_round_trip_and_stale_detection(tmp_path: Path) -> None:
    samples = extract.samples_in_text(PAGE, "docs/nested.md")
    extract.write(samples, tmp_path)
    assert extract.differences(samples, tmp_path) == []
    assert (tmp_path / "nested_demo" / "Kbuild").read_text().endswith("obj-m := nested_demo.o\n")
    (tmp_path / "nested_demo" / "nested_demo.c").write_text("int y;\n")
    (tmp_path / "orphan").mkdir()
    problems = extract.differences(samples, tmp_path)
    assert any("nested_demo.c: differs from docs/nested.md:7" in p for p in problems)
    assert any("orphan: no page defines this sample" in p for p in problems)


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text(PAGE)
    (docs / "b.md").write_text(PAGE)
    with pytest.raises(SampleError, match=r"already defined at docs/a\.md:7"):
        extract.collect(docs, tmp_path)
