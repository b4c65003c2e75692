"""Archives whose bytes depend only on the files' contents, names and modes, and on one given time.

Members are sorted, owned by root (uid and gid 0, no names), dated
``mtime`` and given mode 0644, or 0755 for directories and executables;
gzip streams carry no name and no time.  So two archives of the same tree
are identical, whoever made them, wherever and whenever.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path


def members(source: Path) -> Iterator[Path]:
    """Every directory and file under ``source``, sorted by relative path, ``source`` itself excluded."""
    yield from sorted(source.rglob("*"), key=lambda p: p.relative_to(source).as_posix())


def _mode(path: Path) -> int:
    return 0o755 if path.is_dir() or path.stat().st_mode & 0o111 else 0o644


def _tar_info(path: Path, name: str, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = mtime, _mode(path), 0, 0, "", ""
    if path.is_dir():
        info.type = tarfile.DIRTYPE
    else:
        info.size = path.stat().st_size
    return info


def gzip_bytes(data: bytes) -> bytes:
    """``data`` gzipped at the highest level, with no file name and a zero time in the header."""
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as stream:
        stream.write(data)
    return out.getvalue()


def tar_gz(source: Path, dest: Path, top: str, mtime: int) -> None:
    """``dest``: the tree ``source`` as ``top/...`` in a reproducible gzipped tar."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(_tar_info(source, top, mtime))
        for path in members(source):
            info = _tar_info(path, f"{top}/{path.relative_to(source).as_posix()}", mtime)
            if path.is_dir():
                tar.addfile(info)
            else:
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
    dest.write_bytes(gzip_bytes(raw.getvalue()))


def zip_dir(source: Path, dest: Path, mtime: int) -> None:
    """``dest``: the tree ``source`` as ``<source's name>/...`` in a reproducible zip file."""
    stamp = max(time.gmtime(mtime)[:6], (1980, 1, 1, 0, 0, 0))  # zip cannot date anything before 1980
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in members(source):
            if path.is_dir():
                continue
            info = zipfile.ZipInfo(f"{source.name}/{path.relative_to(source).as_posix()}", date_time=stamp)
            info.external_attr = _mode(path) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
