"""Text from a run or an imported results file is rendered as text, never as markup.

A real Sphinx build of a small project whose results hold, in every field a
page shows, lines crafted to break out of a code fence, a table or a tab, or
to smuggle HTML.  The built page must show each line as text and keep the
structure it has with harmless results.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from bs4 import BeautifulSoup, Tag

from kprobe_docs.render.sphinxext import shown
from kprobe_docs.store import results
from kprobe_docs.store.results import Record

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = [
    "```",
    "````",
    "```{raw} html",
    '<script>alert("x")</script>',
    "```",
    "~~~",
    "~~~~~~~~ {raw} html",
    ":::{tab-item} injected",
    "::::",
    "{raw}`<b>role</b>`",
    "{sub}`sub`",
    "```{kprobe-matrix}",
    "<!-- an HTML comment -->",
    "-->",
    '<img src="x" onerror="alert(1)">',
    "[a link](javascript:alert(1))",
    ".. raw:: html",
    "| a | table | row |",
    "**bold** _em_ `code`",
    "$$ x^2 $$",
    "nul:\x00:end",
    "ansi:\x1b[31mred\x1b[0m",
    "bell:\x07 del:\x7f",
]
PAGE = """# Demo

```{kprobe-sample} demo_mod
---
kind: kmod
expect: |
  demo_mod: loaded
---
int demo;
```

```{kprobe-matrix}
```

```{kprobe-kernel-config}
```

```{kprobe-debugfs} demo_mod
```

```{kprobe-listed} demo_mod
```

```{kprobe-bcc-boots}
```

```{kprobe-api-matrix}
```

```{kprobe-arches}
```
"""
TARGETS = ("t-amd64", "u-arm64")


def _results(lines: list[str]) -> tuple[list[Record], dict[str, results.TargetFacts]]:
    joined = " ".join(lines)
    records = []
    for target in TARGETS:
        record = Record("demo_mod", target, "kmod", "docs/index.md", "h", "fail", reason=joined, log=lines)
        record.kprobes, record.console, record.matched, record.trigger = lines, lines, lines, lines
        record.build = {"status": "ok", "problem": joined, "log": joined}
        record.provenance = {key: joined for key in ("kernel_package", "kernel_version", "qemu", "date", "bcc")}
        records.append(record)
    api: results.ApiProbe = {"available": True, "what": joined, "problem": joined, "log": "\n".join(lines)}
    facts: results.TargetFacts = {
        "arch": "amd64",
        "config": {"CONFIG_KPROBES": joined},
        "debugfs": {"enabled": lines, "blacklist-head": lines, "blacklist-entries": lines},
        "provenance": {"kernel_package": joined, "kernel_release": joined},
        "api": {"probe": api},
        "bcc": {"runner": [f"python {joined}", f"compiled {joined}"], "seconds": 1.0, "versions": {"bcc": joined}},
    }
    return records, dict.fromkeys(TARGETS, facts)


def _build(tmp_path: Path, lines: list[str]) -> BeautifulSoup:
    (tmp_path / "docs").mkdir(parents=True)
    shutil.copy(ROOT / "conf.py", tmp_path / "conf.py")
    (tmp_path / "docs" / "index.md").write_text(PAGE)
    (tmp_path / "samples").mkdir()
    records, facts = _results(lines)
    results.save(tmp_path / "results" / "20260101T000000Z-1.json", {}, records, facts)
    argv = [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", "-c", str(tmp_path), str(tmp_path / "docs")]
    proc = subprocess.run([*argv, str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return BeautifulSoup((tmp_path / "out" / "index.html").read_text(), "html.parser")


def _structure(page: BeautifulSoup) -> dict[str, int]:
    """What the page is made of: it must not depend on what the results say."""
    body = page.find("article")
    assert isinstance(body, Tag)
    tags = ("script", "img", "a", "table", "tr", "pre", "code", "b", "sub", "input", "label", "div", "iframe")
    return {tag: len(body.find_all(tag)) for tag in tags} | {"comments": str(body).count("<!--")}


def test_hostile_lines_in_results_are_shown_as_text_and_change_nothing(tmp_path: Path) -> None:
    harmless = _structure(_build(tmp_path / "harmless", ["line one", "line two"] * (len(HOSTILE) // 2)))
    page = _build(tmp_path / "hostile", HOSTILE[: len(HOSTILE) // 2 * 2])
    assert _structure(page) == harmless
    text = page.get_text()
    for line in HOSTILE[: len(HOSTILE) // 2 * 2]:
        assert shown(line) in text, f"not shown as text: {line!r}"
    assert not page.find_all(onerror=True)
    hrefs = [str(a.get("href") or "") for a in page.find_all("a")]
    assert not [href for href in hrefs if href.startswith("javascript:")]
    scripts = [s for s in page.find_all("script") if not s.get("src")]
    assert not [s for s in scripts if "alert" in s.get_text()]


def test_control_characters_are_shown_as_escapes() -> None:
    assert shown("nul:\x00 esc:\x1b[31m tab:\t") == "nul:\\x00 esc:\\x1b[31m tab:\t"
    assert shown("lone \ud800 surrogate") == "lone \\ud800 surrogate"
