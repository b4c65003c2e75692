"""Sphinx configuration: the kprobes guide, as HTML and as man pages.

Build with ``sphinx-build -c . docs build/docs/html`` (``tox -e docs``) or the
``man`` builder (``tox -e man``).  Man pages are the pages under
``docs/man/`` named ``<name>.<section>.md``.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent

project = "kprobe-docs"
author = "the kprobe-docs developers"
copyright = "2026, the kprobe-docs developers"
extensions = [
    "myst_parser",
    "sphinx_copybutton",
    "sphinx_design",
    "kprobe_docs.render.sphinxext",
]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown"}
exclude_patterns: list[str] = []
html_theme = "furo"
html_title = "kprobe-docs: kernel probes, verified"
html_static_path: list[str] = []
copybutton_prompt_text = "$ "


def _man_pages() -> list[tuple[str, str, str, list[str], int]]:
    pages = []
    for path in sorted((ROOT / "docs" / "man").glob("*.md")):
        match = re.fullmatch(r"(.+)\.(\d)\.md", path.name)
        if match is None:
            continue
        title = next(
            (line.lstrip("# ").strip() for line in path.read_text().splitlines() if line.startswith("# ")),
            match[1],
        )
        description = title.split(" - ", 1)[-1]
        pages.append((f"man/{path.stem}", match[1], description, [author], int(match[2])))
    return pages


man_pages = _man_pages()
man_show_urls = False
