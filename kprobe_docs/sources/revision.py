"""Which sources a build is made from: the commit of the checkout, and the time a reproducible build uses."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def commit(root: Path) -> str:
    """The checkout's commit, with ``-dirty`` when tracked files differ from it; ``unknown`` outside git."""
    head = _git(root, "rev-parse", "HEAD")
    if head is None:
        return "unknown (not a git checkout)"
    changed = _git(root, "status", "--porcelain", "--untracked-files=no")
    return f"{head}-dirty" if changed else head


def commit_epoch(root: Path) -> int | None:
    """The commit time of the checkout's HEAD, in seconds since 1970; None outside git."""
    stamp = _git(root, "log", "-1", "--format=%ct")
    return int(stamp) if stamp else None


def build_epoch() -> int:
    """``SOURCE_DATE_EPOCH`` when it is set (reproducible builds), else now."""
    given = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(given) if given.isdigit() else int(time.time())


def date_of(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))
