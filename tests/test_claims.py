"""Claims: statements bound to what proves them, the check that none is unbound, and the ledger."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from bs4 import BeautifulSoup

from kprobe_docs.sources.claims import unbound, unbound_in
from kprobe_docs.store import results
from kprobe_docs.store.results import Record

ROOT = Path(__file__).resolve().parent.parent

PAGE = """# Title with -EINVAL in it, not checked

Registration fails with `-ENOENT` for an unknown name.

:::{claim} bound-one
:cites: kernel/kprobes.c (6.12)
This fails with `-EINVAL`, since 5.10.
:::

::::{tab-set}
:::{tab-item} One
The list shows `[OPTIMIZED]` here.
:::
::::

```c
return -EINVAL; /* code is not prose */
```

The default is 10 instances.
Removed in Linux 4.19, as it says.
"""


def test_statements_outside_claims_are_found_with_their_line() -> None:
    found = [(u.line, u.kind) for u in unbound(PAGE, "docs/p.md")]
    assert found == [(3, "error code"), (12, "probe flag"), (20, "default"), (21, "kernel version")]


def test_no_page_states_a_kernel_fact_outside_a_claim() -> None:
    unbound_lines = [str(u) for u in unbound_in(ROOT / "docs", ROOT)]
    assert unbound_lines == [], "\n".join(unbound_lines)


SAMPLE = """# Demo

```{kprobe-sample} demo_mod
---
kind: kmod
expect: |
  @said demo_mod: loaded$
  @ibt when(CONFIG_X86_KERNEL_IBT=y) demo_mod: at f\\+0x4$
---
int demo;
```

:::{claim} demo-loads
:proves: demo_mod@said
:cites: nowhere (a test)
The module loads and says so.
:::

```{toctree}
ledger
```
"""


def _project(tmp_path: Path, page: str) -> Path:
    (tmp_path / "docs").mkdir(parents=True)
    shutil.copy(ROOT / "conf.py", tmp_path / "conf.py")
    (tmp_path / "docs" / "index.md").write_text(page)
    (tmp_path / "docs" / "ledger.md").write_text("# Ledger\n\n```{kprobe-claims}\n```\n")
    (tmp_path / "samples").mkdir()
    return tmp_path


def _build(project: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "sphinx", "-E", "-W", "-q", "-b", "html", "-c", str(project)]
    return subprocess.run([*argv, str(project / "docs"), str(project / "out")], capture_output=True, text=True)


def _record(target: str, verdict: results.Verdict, named: dict[str, str]) -> Record:
    return Record("demo_mod", target, "kmod", "docs/index.md", "h", verdict, named=named)


def test_a_claim_shows_where_it_holds_and_where_it_fails_and_the_ledger_lists_it(tmp_path: Path) -> None:
    project = _project(tmp_path, SAMPLE)
    records = [
        _record("t-amd64", "pass", {"said": "[1.0] demo_mod: loaded"}),
        _record("u-arm64", "fail", {}),
        _record("v-amd64", "not-claimed", {}),
    ]
    results.save(
        project / "results" / "20260101T000000Z-1.json",
        {},
        records,
        {target: {} for target in ("t-amd64", "u-arm64", "v-amd64")},
    )
    proc = _build(project)
    assert proc.returncode == 0, proc.stderr
    page = BeautifulSoup((project / "out" / "index.html").read_text(), "html.parser")
    status = page.select_one("#claim-demo-loads .kd-claim-status")
    assert status is not None
    assert "kd-claim-failing" in status["class"]
    assert "Shown by demo_mod@said: FAILS on u-arm64; passes on 1 target(s)." in status.get_text()
    assert "Source: nowhere (a test)." in status.get_text()
    ledger = BeautifulSoup((project / "out" / "ledger.html").read_text(), "html.parser")
    row = [td.get_text(" ", strip=True) for td in ledger.select("tbody tr")[0].select("td")]
    assert row[0] == "demo-loads" and row[1] == "The module loads and says so."
    assert row[3:] == ["pass", "FAIL", "not claimed"]
    assert "1 claims: 1 proven by runs, 0 cited only." in ledger.get_text()


def test_a_proof_that_names_no_line_stops_the_build_at_its_place(tmp_path: Path) -> None:
    project = _project(tmp_path, SAMPLE.replace(":proves: demo_mod@said", ":proves: demo_mod@nothing"))
    proc = _build(project)
    assert proc.returncode != 0
    assert "docs/index.md:13: claim demo-loads: proves: sample demo_mod has no line named @nothing" in proc.stderr
    assert "(its names: @said, @ibt)" in proc.stderr


def test_an_unbound_statement_fails_the_build_naming_its_line(tmp_path: Path) -> None:
    project = _project(tmp_path, SAMPLE + "\nIt returns `-EBUSY` when busy.\n")
    proc = _build(project)
    assert proc.returncode != 0
    assert "index.md:23: WARNING: error code stated outside a claim: It returns `-EBUSY` when busy." in proc.stderr
