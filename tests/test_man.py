"""The man pages: built by Sphinx's man builder, each rendered by man(1) without a warning from groff."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = {"kprobes.7", "register_kprobe.9", "register_kretprobe.9", "NOKPROBE_SYMBOL.9"}


def test_every_man_page_renders(tmp_path: Path) -> None:
    if shutil.which("man") is None:
        pytest.skip("man(1) is not installed: kprobe-docs setup installs man-db (as root)")
    argv = [
        sys.executable,
        "-m",
        "sphinx",
        "-E",
        "-q",
        "-W",
        "-b",
        "man",
        "-c",
        str(ROOT),
        str(ROOT / "docs"),
        str(tmp_path),
    ]
    subprocess.run(argv, check=True, cwd=ROOT)
    pages = sorted(tmp_path.glob("*.[0-9]"))
    assert {p.name for p in pages} >= EXPECTED
    for page in pages:
        shown = subprocess.run(
            ["man", "--warnings", "-l", str(page)],  # groff's warnings (bad requests, fonts, escapes) on stderr
            capture_output=True,
            text=True,
            env={"MANPAGER": "cat", "COLUMNS": "80", "PATH": "/usr/bin:/bin"},
        )
        assert shown.returncode == 0, f"{page.name}: {shown.stderr}"
        assert shown.stderr == "", f"{page.name}: groff warns: {shown.stderr}"
        name = page.name.rsplit(".", 1)[0]
        assert "NAME" in shown.stdout and name in shown.stdout, f"{page.name} has no NAME section naming {name}"
        assert "SYNOPSIS" in shown.stdout or page.name == "kprobes.7", f"{page.name} has no SYNOPSIS"
