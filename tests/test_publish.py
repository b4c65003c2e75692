"""Publishing for real: two releases from two clones of one commit, and the man pages installed and read by man."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from kprobe_docs.publish import manpages, release
from kprobe_docs.store import results
from kprobe_docs.store.results import Record

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = "20261201T120000Z-77"


def _clone(into: Path) -> Path:
    if not (ROOT / ".git").exists():
        pytest.skip(f"{ROOT} is not a git checkout: a release is made from a commit")
    subprocess.run(["git", "clone", "-q", "--shared", str(ROOT), str(into)], check=True)
    record = Record("kprobe_example", "debian-bookworm-amd64", "kmod", "docs/examples/kprobe_example.md", "h",
                    "pass", provenance={"kernel_release": "6.1.0-99-amd64", "date": "2026-12-01"})  # fmt: skip
    facts: results.TargetFacts = {"arch": "amd64", "provenance": {"kernel_release": "6.1.0-99-amd64"}}
    run: results.RunInfo = {
        "id": RUN_ID,
        "started": "2026-12-01T12:00:00+00:00",
        "finished": "2026-12-01T12:05:00+00:00",
    }
    results.save(into / "results" / f"{RUN_ID}.json", run, [record], {"debian-bookworm-amd64": facts})
    return into


def _publish(checkout: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-P", "-m", "kprobe_docs", "publish"], cwd=checkout, capture_output=True,
                          text=True, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """dist/ of two clones of HEAD at different paths, made at different times."""
    base = tmp_path_factory.mktemp("publish")
    first, second = _clone(base / "one"), _clone(base / "elsewhere" / "two")
    os.utime(second / "conf.py", (1, 1))  # file times must not matter
    (first / "samples" / "kprobe_example" / "kprobe_example.o").write_bytes(b"a reader's build output")
    with (first / "docs" / "index.md").open("a") as page:
        page.write("\nAn uncommitted sentence.\n")
    for checkout in (first, second):
        done = _publish(checkout)
        assert done.returncode == 0, done.stderr
    assert "publish: uncommitted changes are not in the release" in _publish(first).stderr
    return first / "dist", second / "dist"


def test_two_releases_of_one_commit_are_byte_identical(releases: tuple[Path, Path]) -> None:
    first, second = releases
    names = sorted(p.name for p in first.iterdir())
    version = release.version()
    assert names == sorted(["SHA256SUMS", *release.file_names(version)])
    assert all(name.startswith(f"kprobe-docs-{version}-") for name in names if name != "SHA256SUMS")
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), f"{name} differs between the two"


def test_sha256sums_checks_with_sha256sum(releases: tuple[Path, Path]) -> None:
    done = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=releases[0], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": OK") == 3


def _members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as archive:
        return archive.getmembers()


def test_archives_are_sorted_root_owned_and_dated_by_the_commit(releases: tuple[Path, Path]) -> None:
    commit_time = int(subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"], capture_output=True,
                                     text=True, check=True).stdout)  # fmt: skip
    for path in sorted(releases[0].glob("*.tar.gz")):
        members = _members(path)
        assert [m.name for m in members] == sorted(m.name for m in members), path.name
        assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
        assert {m.mtime for m in members} == {commit_time}
        header = path.read_bytes()[:10]
        assert header[4:8] == b"\0\0\0\0", f"{path.name}: the gzip header carries a time"


def _read(archive_path: Path, member: str) -> str:
    with tarfile.open(archive_path) as archive:
        found = archive.extractfile(member)
        assert found is not None, member
        return found.read().decode()


def _text(archive_path: Path, member: str) -> str:
    """A page of the site as its reader sees it: the text, whitespace collapsed."""
    return " ".join(BeautifulSoup(_read(archive_path, member), "html.parser").get_text().split())


def test_the_release_holds_site_man_pages_and_results_with_provenance(releases: tuple[Path, Path]) -> None:
    dist, version = releases[0], release.version()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    html = f"kprobe-docs-{version}-html"
    page = _text(dist / f"{html}.tar.gz", f"{html}/examples/kprobe_example.html")
    assert f"Built from commit {head} on " in page
    assert f"Results rendered from run(s): {RUN_ID} (debian-bookworm-amd64; finished 2026-12-01T12:05:00" in page
    other = _text(dist / f"{html}.tar.gz", f"{html}/examples/maxactive.html")  # its samples have no results here
    assert f"Built from commit {head} on " in other and "This page renders no verification results." in other
    runs = _text(dist / f"{html}.tar.gz", f"{html}/runs.html")
    assert RUN_ID in runs and "debian-bookworm-amd64: 6.1.0-99-amd64" in runs
    man = f"kprobe-docs-{version}-man"
    names = {m.name for m in _members(dist / f"{man}.tar.gz")}
    assert {f"{man}/man9/register_kretprobe.9", f"{man}/man7/kprobes.7"} <= names
    assert f"Built from commit {head}".replace("-", "\\-") in _read(dist / f"{man}.tar.gz",
                                                                   f"{man}/man9/register_kretprobe.9")  # fmt: skip
    bundle = f"kprobe-docs-{version}-results"
    assert {f"{bundle}/results/{RUN_ID}.json", f"{bundle}/results.schema.json"} <= {
        m.name for m in _members(dist / f"{bundle}.tar.gz")
    }


def _man(prefix: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"MANPATH": str(prefix), "MANPAGER": "cat", "COLUMNS": "80", "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    return subprocess.run(["man", *args], capture_output=True, text=True, env=env, check=False)


def test_install_man_then_man_9_shows_the_page_then_uninstall_removes_exactly_that(
    releases: tuple[Path, Path], tmp_path: Path
) -> None:
    prefix = tmp_path / "man"
    (prefix / "man9").mkdir(parents=True)
    (prefix / "man9" / "other.9.gz").write_bytes(gzip.compress(b".TH OTHER 9\n"))  # not ours: must stay
    tarball = releases[0] / f"kprobe-docs-{release.version()}-man.tar.gz"
    cli = [sys.executable, "-m", "kprobe_docs", "install-man", "--prefix", str(prefix)]
    done = subprocess.run([*cli, "--from", str(tarball)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert f"read them with: MANPATH={prefix} man 9 register_kretprobe" in done.stdout
    installed = prefix / "man9" / "register_kretprobe.9.gz"
    assert gzip.decompress(installed.read_bytes()).startswith(b'.\\" Man page generated from reStructuredText')
    shown = _man(prefix, "9", "register_kretprobe")
    assert shown.returncode == 0, shown.stderr
    assert "register_kretprobe" in shown.stdout and "SYNOPSIS" in shown.stdout and "PROVENANCE" in shown.stdout
    assert _man(prefix, "7", "kprobes").returncode == 0

    kept = prefix / "man9" / "register_kprobe.9.gz"
    kept.write_bytes(gzip.compress(b".TH CHANGED 9\n"))  # changed by someone since: must stay
    done = subprocess.run([*cli, "--uninstall"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert f"kept {kept}: it changed since it was installed" in done.stdout
    left = sorted(p.relative_to(prefix).as_posix() for p in prefix.rglob("*"))
    assert left == ["man9", "man9/other.9.gz", "man9/register_kprobe.9.gz"]


def test_install_man_without_pages_says_how_to_make_them(tmp_path: Path) -> None:
    argv = ["install-man", "--prefix", str(tmp_path / "m"), "--from", str(tmp_path / "nowhere")]
    done = subprocess.run([sys.executable, "-m", "kprobe_docs", *argv], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "not found; build the man pages first (./run-tox -e man)" in done.stderr
    done = subprocess.run([sys.executable, "-m", "kprobe_docs", *argv, "--uninstall"], capture_output=True, text=True)
    assert done.returncode == 2 and "--from has no meaning with it" in done.stderr


def test_a_damaged_install_list_is_refused_not_followed(tmp_path: Path) -> None:
    (tmp_path / manpages.MANIFEST).write_text('{"files": {"../../etc/passwd": "x"}, "dirs": []}')
    with pytest.raises(manpages.ManError, match="not a kprobe-docs install list"):
        manpages.uninstall(tmp_path)


def test_reproducible_gzip_has_no_time_and_round_trips() -> None:
    from kprobe_docs.publish.archive import gzip_bytes

    data = hashlib.sha256(b"x").digest() * 100
    packed = gzip_bytes(data)
    assert packed[4:8] == b"\0\0\0\0" and gzip.decompress(packed) == data


def test_a_hostile_man_tarball_writes_nothing_outside_the_prefix(tmp_path: Path) -> None:
    """Only regular files named like man pages are taken, each by its base name: no escape, no link followed."""
    tarball, page, prefix = tmp_path / "evil.tar.gz", tmp_path / "page.9", tmp_path / "prefix"
    page.write_text(".TH EVIL 9\n")
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(page, arcname="../../escaped.9")
        archive.add(page, arcname="deep/down/fine.9")
        link = tarfile.TarInfo("man9/link.9")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    manpages.install(tarball, prefix)
    assert sorted(p.relative_to(prefix).as_posix() for p in prefix.rglob("*.gz")) == ["man9/fine.9.gz"]
    assert not (tmp_path.parent / "escaped.9").exists()


def test_publish_into_a_place_it_cannot_write_says_so_before_building(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    argv = [sys.executable, "-m", "kprobe_docs", "publish", "--dist", str(blocker / "dist")]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert f"kprobe-docs: cannot make the release in {blocker / 'dist'}: " in done.stderr
    assert "building" not in done.stderr


def test_install_man_never_overwrites_a_page_it_did_not_install_nor_removes_before_it_can_install(
    releases: tuple[Path, Path], tmp_path: Path
) -> None:
    prefix, tarball = tmp_path / "man", releases[0] / f"kprobe-docs-{release.version()}-man.tar.gz"
    foreign = prefix / "man7" / "kprobes.7.gz"
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(gzip.compress(b".TH KPROBES 7 other\n"))
    with pytest.raises(manpages.ManError, match="not installed by kprobe-docs, or changed since, so left alone"):
        manpages.install(tarball, prefix)
    assert gzip.decompress(foreign.read_bytes()) == b".TH KPROBES 7 other\n"
    foreign.unlink()
    manpages.install(tarball, prefix)
    manpages.install(tarball, prefix)  # again: its own pages are in the way, and that is fine
    with pytest.raises(manpages.ManError, match=f"{tmp_path / 'empty'}: no man pages"):
        (tmp_path / "empty").mkdir()
        manpages.install(tmp_path / "empty", prefix)
    assert (prefix / "man9" / "register_kretprobe.9.gz").exists()  # a failed install removed nothing
