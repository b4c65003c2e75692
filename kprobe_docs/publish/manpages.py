"""``kprobe-docs install-man``: put the man pages where man finds them, and take exactly those away again.

Pages are installed as ``PREFIX/man<section>/<name>.<section>.gz`` (gzip, as
man-db reads them) and listed, with their checksums, in
``PREFIX/.kprobe-docs-man.json``; ``--uninstall`` removes the files of that
list that still hold what was installed, then the directories it made.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import tempfile
from pathlib import Path

from .archive import gzip_bytes

DEFAULT_PREFIX = Path("/usr/local/share/man")
MANIFEST = ".kprobe-docs-man.json"
PAGE_RE = re.compile(r"[A-Za-z0-9_.-]+\.([1-9])")
INSTALLED_RE = re.compile(r"man[1-9]/[A-Za-z0-9_.-]+\.[1-9]\.gz")


class ManError(RuntimeError):
    """The man pages cannot be found, installed or removed; the message says why and what to do."""


def pages_in(directory: Path, source: Path | None = None) -> list[tuple[Path, str]]:
    """Each man page under ``directory`` (flat, or in manN/ directories) with its section; ``source`` is what
    errors name (the tarball ``directory`` was unpacked from)."""
    found = [(p, m[1]) for p in sorted(directory.rglob("*")) if p.is_file() and (m := PAGE_RE.fullmatch(p.name))]
    if not found:
        raise ManError(f"{source or directory}: no man pages (files named NAME.SECTION) in it")
    return found


def _unpack(tarball: Path, into: Path) -> Path:
    """The man pages of ``tarball``, written under ``into``: regular files only, none outside ``into``."""
    try:
        with tarfile.open(tarball) as archive:
            for member in archive.getmembers():
                name = Path(member.name)
                if not member.isfile() or not PAGE_RE.fullmatch(name.name) or name.is_absolute() or ".." in name.parts:
                    continue
                data = archive.extractfile(member)
                if data is not None:
                    (into / name.name).write_bytes(data.read())
    except (OSError, tarfile.TarError) as exc:
        raise ManError(f"{tarball}: not a readable man page archive: {exc}") from exc
    return into


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest(prefix: Path) -> tuple[dict[str, str], list[str]]:
    """The files (with their checksums) and directories an install left under ``prefix``."""
    path = prefix / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}, []
    except (OSError, ValueError) as exc:
        raise ManError(f"{path}: cannot be read ({exc}); remove the pages by hand, then this file") from exc
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("files"), dict)
        or not isinstance(data.get("dirs"), list)
        or not all(isinstance(k, str) and INSTALLED_RE.fullmatch(k) for k in data["files"])
        or not all(isinstance(d, str) and re.fullmatch(r"man[1-9]", d) for d in data["dirs"])
    ):
        raise ManError(f"{path}: not a kprobe-docs install list; remove the pages by hand, then this file")
    return {str(k): str(v) for k, v in data["files"].items()}, [str(d) for d in data["dirs"]]


def _foreign(pages: list[tuple[Path, str]], prefix: Path) -> list[str]:
    """The files an install would overwrite that the last install did not write, or that changed since."""
    installed, _ = _manifest(prefix)
    found = []
    for page, section in pages:
        name = f"man{section}/{page.name}.gz"
        path = prefix / name
        if path.exists() and installed.get(name) != _digest(path.read_bytes()):
            found.append(str(path))
    return found


def _write(pages: list[tuple[Path, str]], prefix: Path) -> int:
    """Write the pages gzipped, listing each file and each directory made; how many pages."""
    files: dict[str, str] = {}
    dirs: list[str] = []
    try:
        prefix.mkdir(parents=True, exist_ok=True)
        for page, section in pages:
            target_dir = prefix / f"man{section}"
            if not target_dir.exists():
                target_dir.mkdir()
                dirs.append(target_dir.name)
            data = gzip_bytes(page.read_bytes())
            target = target_dir / f"{page.name}.gz"
            target.write_bytes(data)
            files[target.relative_to(prefix).as_posix()] = _digest(data)
    except OSError as exc:
        raise ManError(f"cannot install into {prefix}: {exc.strerror}; run as root, or give --prefix DIR") from exc
    finally:
        if files or dirs:
            try:
                (prefix / MANIFEST).write_text(json.dumps({"files": files, "dirs": dirs}, indent=1, sort_keys=True))
            except OSError as exc:
                raise ManError(f"cannot write {prefix / MANIFEST}: {exc.strerror}; remove {', '.join(files)} "
                               "by hand") from exc  # fmt: skip
    return len(files)


def install(source: Path, prefix: Path) -> list[str]:
    """Install the pages of ``source`` (a directory or a man page tarball) under ``prefix``; what was done.

    Nothing is removed or written unless every page can go in: the source must hold man pages, and no file
    in the way may be one this command did not install (or one changed since)."""
    if not source.exists():
        raise ManError(f"{source}: not found; build the man pages first (./run-tox -e man), or give --from "
                       "a kprobe-docs-VERSION-man.tar.gz from tox -e publish")  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        directory = _unpack(source, Path(scratch)) if source.is_file() else source
        pages = pages_in(directory, source)
        foreign = _foreign(pages, prefix)
        if foreign:
            raise ManError(f"not installed by kprobe-docs, or changed since, so left alone: {', '.join(foreign)}; "
                           "remove them, or give another --prefix")  # fmt: skip
        said = uninstall(prefix) if (prefix / MANIFEST).exists() else []
        count = _write(pages, prefix)
    sections = sorted({s for _, s in pages})
    return [*said, f"installed {count} man pages in {prefix} (sections {', '.join(sections)})"]


def uninstall(prefix: Path) -> list[str]:
    """Remove what ``install`` put under ``prefix``; a page changed since is kept, and said."""
    files, dirs = _manifest(prefix)
    if not files and not dirs:
        return [f"{prefix}: no kprobe-docs man pages installed there ({MANIFEST} not found)"]
    removed, kept = 0, []
    try:
        for name, digest in sorted(files.items()):
            path = prefix / name
            if not path.exists():
                continue
            if _digest(path.read_bytes()) != digest:
                kept.append(name)
                continue
            path.unlink()
            removed += 1
        for name in dirs:
            if (prefix / name).is_dir() and not any((prefix / name).iterdir()):
                (prefix / name).rmdir()
        (prefix / MANIFEST).unlink()
    except OSError as exc:
        raise ManError(f"cannot remove from {prefix}: {exc.strerror}; run as root, or give the --prefix used") from exc
    said = [f"removed {removed} man pages from {prefix}"]
    said += [f"kept {prefix / name}: it changed since it was installed" for name in kept]
    return said
