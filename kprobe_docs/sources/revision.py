"""Which sources a build is made from: the commit of the checkout, and the time a reproducible build uses."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time
from pathlib import Path


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


COMMIT_ENV = "KPROBE_DOCS_COMMIT"  # set by a build of an exported commit, which has no git directory of its own


def head(root: Path) -> str | None:
    """The commit the checkout is at; None outside git."""
    return _git(root, "rev-parse", "HEAD")


def export(root: Path, into: Path) -> None:
    """The files of the checkout's HEAD, exactly as committed, written under ``into``."""
    done = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", "HEAD"], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        archive.extractall(into)  # our own commit's files: nothing to filter


def commit(root: Path) -> str:
    """The checkout's commit, with ``-dirty`` when tracked files differ from it; ``unknown`` outside git."""
    given = os.environ.get(COMMIT_ENV)
    if given:
        return given
    at = head(root)
    if at is None:
        return "unknown (not a git checkout)"
    changed = _git(root, "status", "--porcelain", "--untracked-files=no")
    return f"{at}-dirty" if changed else at


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
