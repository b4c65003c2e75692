"""The build-environment cache: what counts as prepared, and what is made again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kprobe_docs.build import environment as buildenv
from kprobe_docs.sources.targets import Mirror, Target, load_catalog

MIRROR = Mirror("http://archive.example/debian", "http://security.example/debian-security")


@pytest.fixture
def siblings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Target]:
    monkeypatch.setenv("KPROBE_DOCS_CACHE", str(tmp_path))
    catalog = load_catalog()
    return catalog.siblings(catalog.targets[catalog.default[0]])


def _stamp(directory: Path, spec: dict[str, object], files: Path, targets: list[Target]) -> None:
    kernels = {}
    for name in ("vmlinuz", "config", "busybox"):
        (files / name).write_text(name)
    (files / "modules" / "kernel").mkdir(parents=True)
    (files / "modules" / "modules.builtin").write_text("kernel/fs/ext4/ext4.ko\n")
    for target in (t.name for t in targets):
        kernels[target] = {
            "target": target, "arch": "amd64", "release": "6.1.0-1-amd64", "package": "p", "version": "6.1.1-1",
            "sha256": "0", "vmlinuz": str(files / "vmlinuz"), "headers": "/h", "config": str(files / "config"),
            "busybox": str(files / "busybox"), "modules": str(files / "modules"),
        }  # fmt: skip
    directory.mkdir(parents=True)
    (directory / buildenv.STAMP).write_text(json.dumps({"recipe": spec, "kernels": kernels}))


def test_recipe_names_a_directory_per_release_and_pin(siblings: list[Target]) -> None:
    spec = buildenv.recipe(siblings, MIRROR)
    assert "gcc-aarch64-linux-gnu" in spec["packages"]  # type: ignore[operator]
    assert spec["architectures"] == sorted({"amd64", *(t.arch for t in siblings)})
    assert buildenv.env_directory(spec).name.startswith(f"{spec['release']}-")


def test_stamp_with_other_recipe_missing_file_or_garbage_is_not_prepared(
    siblings: list[Target], tmp_path: Path
) -> None:
    spec = buildenv.recipe(siblings, MIRROR)
    directory = buildenv.env_directory(spec)
    _stamp(directory, spec, tmp_path, siblings)
    assert buildenv._load(directory, spec) is not None
    assert buildenv.cached(siblings, MIRROR) is not None
    assert buildenv._load(directory, {**spec, "version": -1}) is None
    (tmp_path / "modules" / "modules.builtin").unlink()
    assert buildenv._load(directory, spec) is None
    (tmp_path / "modules" / "modules.builtin").write_text("")
    (tmp_path / "busybox").unlink()
    assert buildenv._load(directory, spec) is None
    (directory / buildenv.STAMP).write_text('{"recipe": ')
    assert buildenv._load(directory, spec) is None
    assert buildenv.cached(siblings, MIRROR) is None


def test_a_stamp_holds_paths_relative_to_its_environment_so_the_cache_can_move(
    siblings: list[Target], tmp_path: Path
) -> None:
    spec = buildenv.recipe(siblings, MIRROR)
    directory = buildenv.env_directory(spec)
    directory.mkdir(parents=True)
    image = directory / "kernels" / "vmlinuz"
    image.parent.mkdir()
    image.write_bytes(b"kernel image")
    kernel = buildenv.Kernel(
        siblings[0].name, "amd64", "6.1.0-1-amd64", "p", "6.1.1-1", "0", str(image), "/h",
        str(directory / "config"), str(directory / "busybox"), "", buildenv._sha256(image), image.stat().st_size,
    )  # fmt: skip
    stored = buildenv._relative(kernel, directory)
    assert stored["vmlinuz"] == "kernels/vmlinuz" and stored["config"] == "config" and stored["modules"] == ""
    moved = tmp_path / "elsewhere"
    assert buildenv._resolved(buildenv.Kernel(**stored), moved).vmlinuz == str(moved / "kernels" / "vmlinuz")  # type: ignore[arg-type]


def test_a_damaged_kernel_image_is_told_from_a_sound_one(tmp_path: Path) -> None:
    image = tmp_path / "vmlinuz"
    image.write_bytes(b"x" * 1000)
    kernel = buildenv.Kernel("t", "amd64", "r", "p", "v", "0", str(image), "/h", "c", "b", "", "", 0)
    assert buildenv.image_problem(kernel) == "no size and hash were recorded for it"
    sound = buildenv.Kernel(**{**kernel.__dict__, "image_sha256": buildenv._sha256(image), "image_size": 1000})
    assert buildenv.image_problem(sound) == ""
    image.write_bytes(b"x" * 10)
    assert buildenv.image_problem(sound) == "10 bytes, 1000 when fetched"
    image.write_bytes(b"y" * 1000)
    assert buildenv.image_problem(sound) == "its sha256 differs from the one recorded when it was fetched"
    image.unlink()
    assert buildenv.image_problem(sound) == "it is missing"
