"""The Sphinx extension, run for real on small projects."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from kprobe_docs.store import results
from kprobe_docs.store.results import Record

ROOT = Path(__file__).resolve().parent.parent

GOOD = """# Demo

```{kprobe-sample} demo_mod
---
kind: kmod
expect: |
  demo_mod: loaded
---
int demo;
```
"""

BAD = """# Demo

Text.

```{kprobe-sample} demo_mod
---
kind: kmod
expect: |
  demo_mod: (unclosed
---
int demo;
```
"""


def _project(tmp_path: Path, page: str) -> Path:
    shutil.copy(ROOT / "conf.py", tmp_path / "conf.py")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text(page)
    (tmp_path / "samples").mkdir()
    return tmp_path


def _build(project: Path) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "-b",
        "html",
        "-c",
        str(project),
        str(project / "docs"),
        str(project / "out"),
    ]
    return subprocess.run(argv, capture_output=True, text=True, cwd=project)


def test_malformed_directive_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    proc = _build(_project(tmp_path, BAD))
    assert proc.returncode != 0
    assert "docs/index.md:5: kprobe-sample demo_mod: expect: bad regular expression" in proc.stderr


def test_unverified_sample_renders_code_and_says_so(tmp_path: Path) -> None:
    proc = _build(_project(tmp_path, GOOD))
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "out" / "index.html").read_text()
    assert 'class="kd-code highlight-c' in html and '<span class="n">demo</span>' in html
    assert "copybutton.js" in html
    assert "not verified yet" in html
    assert "_samples/demo_mod.zip" in html


TABLES = """# Tables

```{kprobe-kernel-config}
```

```{kprobe-api-matrix}
```

```{kprobe-listed} demo_mod
```

```{kprobe-matrix}
```
"""


def test_results_tables_render_with_log_links(tmp_path: Path) -> None:
    project = _project(tmp_path, GOOD)
    (project / "docs" / "tables.md").write_text(TABLES)
    (project / "docs" / "index.md").write_text(GOOD + "\n```{toctree}\ntables\n```\n")
    record = Record("demo_mod", "t-amd64", "kmod", "docs/index.md", "h", "pass", kprobes=["ffff  k  f+0x4    [FTRACE]"])
    record.provenance = {"kernel_release": "6.12.1-amd64"}
    api: dict[str, results.ApiProbe] = {
        "fprobe": {"available": False, "what": "fprobe", "problem": "e", "log": "fprobe.c:5: error: x\n"}
    }
    facts: results.TargetFacts = {"arch": "amd64", "config": {"CONFIG_KPROBES": "y"}, "api": api, "provenance": {}}
    results.save(project / "results" / "20260101T000000Z-1.json", {}, [record], {"t-amd64": facts})
    proc = _build(project)
    assert proc.returncode == 0, proc.stderr
    html = (project / "out" / "tables.html").read_text()
    assert '<code class="docutils literal notranslate"><span class="pre">CONFIG_KPROBES</span></code>' in html
    assert '<a class="reference external" href="_logs/t-amd64/api-fprobe.txt">no</a>' in html
    assert (project / "out" / "_logs" / "t-amd64" / "api-fprobe.txt").read_text() == "fprobe.c:5: error: x\n"
    assert "f+0x4" in html and "6.12.1-amd64" in html
    assert '<a class="reference internal" href="index.html"><span class="doc">demo_mod</span></a>' in html


def test_a_sample_name_defined_on_two_pages_stops_the_build_naming_both(tmp_path: Path) -> None:
    project = _project(tmp_path, GOOD + "\n```{toctree}\nother\n```\n")
    (project / "docs" / "other.md").write_text("# Other\n\nText.\n\n" + GOOD.split("\n", 2)[2])
    proc = _build(project)
    assert proc.returncode != 0
    assert "docs/other.md:5: sample 'demo_mod' already defined at docs/index.md:3" in proc.stderr


def test_a_target_without_a_date_of_its_own_is_dated_by_its_run(tmp_path: Path) -> None:
    from kprobe_docs.render.sphinxext import _provenance_notes

    facts: results.TargetFacts = {"provenance": {"kernel_package": "linux-image-x", "runner": "host"}}
    run: results.RunInfo = {"id": "r", "started": "2026-12-01T10:00:00+00:00", "finished": "2026-12-01T10:30:00+00:00"}
    results.save(tmp_path / "20261201T100000Z-1.json", run, [], {"host-debian-x": facts})
    notes = _provenance_notes(results.newest(tmp_path)).astext()
    assert "host-debian-x: linux-image-x, run 2026-12-01T10:30:00+00:00" in notes


def test_an_incremental_build_reads_again_the_pages_whose_results_changed(tmp_path: Path) -> None:
    """As under tox -e serve: no -E, the page source unchanged, a results file added between two builds."""
    project = _project(tmp_path, GOOD)
    assert _build(project).returncode == 0
    assert "not verified yet" in (project / "out" / "index.html").read_text()
    run: results.RunInfo = {"id": "r7", "finished": "2026-12-01T10:30:00+00:00"}
    record = Record("demo_mod", "t-amd64", "kmod", "docs/index.md", "h", "pass")
    results.save(project / "results" / "20261201T100000Z-7.json", run, [record], {"t-amd64": {}})
    proc = _build(project)
    assert proc.returncode == 0, proc.stderr
    html = (project / "out" / "index.html").read_text()
    assert "not verified yet" not in html and "t-amd64" in html
    assert "Results rendered from run(s): r7 (t-amd64; finished 2026-12-01T10:30:00+00:00)" in html


ARCH_AND_LAVA = """# Arches

```{kprobe-arch-features}
```

```{kprobe-lava-job} t-amd64
```
"""


def _facts(arch: str, release: str, rethook: str) -> results.TargetFacts:
    return {"arch": arch, "config": {"CONFIG_KRETPROBE_ON_RETHOOK": rethook}, "provenance": {"kernel_release": release}}


def test_the_features_of_each_arch_and_a_lava_job_are_read_from_the_runs(tmp_path: Path) -> None:
    project = _project(tmp_path, GOOD + "\n```{toctree}\narches\n```\n")
    (project / "docs" / "arches.md").write_text(ARCH_AND_LAVA)
    ibt = "kprobe_example: planted kprobe at kernel_clone+0x4/0x440"
    plain = "kprobe_example: planted kprobe at kernel_clone+0x0/0x430"
    records = [
        Record("kprobe_example", "t-amd64", "kmod", "docs/x.md", "h", "pass", named={"landing_ibt": ibt}),
        Record("kprobe_example", "u-amd64", "kmod", "docs/x.md", "h", "pass", named={"landing_entry": plain}),
        Record("kprobe_example", "v-arm64", "kmod", "docs/x.md", "h", "fail", reason="oops"),
        Record("demo_mod", "t-amd64", "kmod", "docs/index.md", "h", "pass", build={"status": "ok"}),
    ]
    targets = {
        "t-amd64": _facts("amd64", "6.12.1-amd64", "y"),
        "u-amd64": _facts("amd64", "5.10.1-amd64", "n"),
        "v-arm64": _facts("arm64", "6.1.1-arm64", "n"),
    }
    results.save(project / "results" / "20260101T000000Z-1.json", {}, records, targets)
    proc = _build(project)
    assert proc.returncode == 0, proc.stderr
    html = (project / "out" / "arches.html").read_text()
    assert "amd64 (kernels 5.10, 6.12)" in html and "arm64 (kernels 6.1)" in html
    assert "+0x0 (5.10); +0x4 (past the ENDBR64 of IBT) (6.12)" in html
    assert "the architecture\N{RIGHT SINGLE QUOTATION MARK}s trampoline (5.10); rethook (6.12)" in html  # smartquotes
    assert "fails (fail)" in html
    text = re.sub(r"<[^>]+>", "", html)
    assert "kprobe-docs lava export --targets t-amd64" in text
    assert "job_name: kprobe-docs t-amd64 from sample 1" in text
    assert "timeout:\n      seconds: 120" in text  # the one sample's 60 s and the gap after it
