"""``kprobe-docs publish``: the release files of one commit and its results, byte for byte reproducible.

Nothing is verified again: the site and the man pages are built from the
files of the checkout's commit (exported with ``git archive``, so neither
uncommitted changes nor build outputs left in ``samples/`` get in) and the
results in ``results/``, with SOURCE_DATE_EPOCH set to the commit's time,
and packed into ``dist/``:

- ``kprobe-docs-VERSION-html.tar.gz``: the site;
- ``kprobe-docs-VERSION-man.tar.gz``: the man pages, in ``man7/`` and ``man9/``;
- ``kprobe-docs-VERSION-results.tar.gz``: the results files and their JSON Schema;
- ``SHA256SUMS``: the checksums of the three, as ``sha256sum -c`` reads them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from ..sources import revision
from ..store import results
from . import archive, manpages

NAME = "kprobe-docs"


class PublishError(RuntimeError):
    """A release cannot be made; the message says why and what to do."""


def version() -> str:
    try:
        return metadata.version(NAME)
    except metadata.PackageNotFoundError as exc:
        raise PublishError(f"{NAME} is not installed, so its version is unknown: pip install the checkout") from exc


def file_names(release: str) -> list[str]:
    return [f"{NAME}-{release}-{part}.tar.gz" for part in ("html", "man", "results")]


def _sphinx(root: Path, builder: str, out: Path, doctrees: Path, env: dict[str, str]) -> None:
    command = [sys.executable, "-P", "-m", "sphinx", "-E", "-n", "-W", "--keep-going", "-q", "-b", builder,
               "-d", str(doctrees), "-c", str(root), str(root / "docs"), str(out)]  # fmt: skip
    done = subprocess.run(command, env={**os.environ, **env}, check=False)
    if done.returncode != 0:
        raise PublishError(f"sphinx-build -b {builder} failed (exit {done.returncode}); its warnings are above")


def _man_tree(built: Path, into: Path) -> None:
    """The man builder's flat output as man7/ and man9/ directories."""
    for page, section in manpages.pages_in(built):
        (into / f"man{section}").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(page, into / f"man{section}" / page.name)


def _results_tree(root: Path, into: Path) -> int:
    """The results files the pages render (``root/results``), and their schema; how many runs."""
    newest = results.newest(root / "results")
    if newest.problems:
        raise PublishError("results files that cannot be read: " + "; ".join(newest.problems)
                           + ". Move them out of results/ before publishing.")  # fmt: skip
    (into / "results").mkdir(parents=True)
    for run in newest.runs.values():
        shutil.copyfile(root / "results" / run.file, into / "results" / run.file)
    (into / "results.schema.json").write_text(json.dumps(results.schema(), indent=2, sort_keys=True) + "\n")
    return len(newest.runs)


def sums(files: list[Path]) -> str:
    return "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in sorted(files))


def _source(root: Path, into: Path, progress: Callable[[str], None]) -> tuple[str, int]:
    """The committed files of ``root`` and its results, copied into ``into``; the commit and its time."""
    head, epoch = revision.head(root), revision.commit_epoch(root)
    if head is None or epoch is None:
        raise PublishError(f"{root} is not a git checkout: a release is made from a commit")
    if revision.commit(root).endswith("-dirty"):
        progress(f"publish: uncommitted changes are not in the release: it is made from commit {head}")
    revision.export(root, into)
    (into / "results").mkdir(exist_ok=True)
    for path in results.result_files(root / "results"):
        shutil.copyfile(path, into / "results" / path.name)
    return head, epoch


def _writable(dist: Path) -> None:
    """Fail before the builds, not after them, when the release cannot be written."""
    dist.mkdir(parents=True, exist_ok=True)
    tempfile.TemporaryFile(dir=dist).close()


def publish(root: Path, dist: Path, progress: Callable[[str], None]) -> list[Path]:
    """Build and pack the release of ``root``'s commit into ``dist``; the files written, SHA256SUMS last."""
    try:
        return _publish(root, dist, progress)
    except OSError as exc:
        raise PublishError(f"cannot make the release in {dist}: {exc.strerror or exc}") from exc


def _publish(root: Path, dist: Path, progress: Callable[[str], None]) -> list[Path]:
    release = version()
    _writable(dist)
    names = file_names(release)
    with tempfile.TemporaryDirectory(prefix="kprobe-docs-publish-") as scratch:
        stage = Path(scratch)
        head, epoch = _source(root, stage / "source", progress)
        progress(f"publish: {NAME} {release}, commit {head}, dated {revision.date_of(epoch)}")
        env = {"SOURCE_DATE_EPOCH": str(epoch), revision.COMMIT_ENV: head}
        progress("publish: building the HTML site")
        _sphinx(stage / "source", "html", stage / "html", stage / "doctrees-html", env)
        progress("publish: building the man pages")
        _sphinx(stage / "source", "man", stage / "man-flat", stage / "doctrees-man", env)
        _man_tree(stage / "man-flat", stage / "man")
        runs = _results_tree(stage / "source", stage / "results")
        progress(f"publish: {runs} results file(s)" + ("" if runs else ": the pages say 'not verified yet'"))
        written = []
        for name, part in zip(names, ("html", "man", "results"), strict=True):
            archive.tar_gz(stage / part, dist / name, name.removesuffix(".tar.gz"), epoch)
            written.append(dist / name)
    (dist / "SHA256SUMS").write_text(sums(written))
    return [*written, dist / "SHA256SUMS"]
