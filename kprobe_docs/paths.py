"""Where things live: the project tree and the per-user cache."""

from __future__ import annotations

import os
from pathlib import Path


class ProjectError(RuntimeError):
    """The command was run outside a kprobe-docs checkout."""


def cache_dir() -> Path:
    """``$KPROBE_DOCS_CACHE``, else ``$XDG_CACHE_HOME/kprobe-docs``, else ``~/.cache/kprobe-docs``."""
    explicit = os.environ.get("KPROBE_DOCS_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kprobe-docs"


def project_root(start: Path | None = None) -> Path:
    """The checkout holding ``docs/`` and ``samples/``, found from ``start`` upwards."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "docs").is_dir() and (candidate / "kmod").is_dir():
            return candidate
    raise ProjectError(f"{here} is not inside a kprobe-docs checkout (no docs/ and kmod/ found)")


def kmod_dir() -> Path:
    """The build glue and the API probes: beside the package in a checkout (an editable install), else in the
    checkout the command runs in (the package installed from a wheel)."""
    beside = Path(__file__).resolve().parent.parent / "kmod"
    return beside if beside.is_dir() else project_root() / "kmod"
