"""Extract stage: MyST pages -> ``samples/<name>/``.

Finds every ``kprobe-sample`` directive in the pages (also inside other
directives such as tab sets), validates it and writes the sample directory:
the source, the Kbuild/Makefile glue from ``kmod/`` and ``sample.json``, the
contract the runner checks.  ``check`` reports a ``samples/`` out of sync.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from markdown_it import MarkdownIt
from mdit_py_plugins.colon_fence import colon_fence_plugin

from ..paths import kmod_dir
from .sample import DIRECTIVE, SPEC_FILE, Sample, SampleError, load_sample, make_sample

FIXTURES = Path("verify") / "fixtures"


class SamplesError(ValueError):
    """samples/ out of sync with the pages, or a sample asked for by a name nobody defines."""


@dataclass(frozen=True)
class Fence:
    info: str
    content: str
    line: int  # 1-based line of the opening fence


def _fences(text: str, offset: int) -> Iterator[Fence]:
    parser = MarkdownIt("commonmark").use(colon_fence_plugin)
    for token in parser.parse(text):
        if token.type in ("fence", "colon_fence") and token.map is not None:
            yield Fence(token.info.strip(), token.content, offset + token.map[0] + 1)


def _split_options(fence: Fence, path: str) -> tuple[dict[str, object], str, int]:
    """Return (options, body, line of the body's first line) of a directive fence."""
    lines = fence.content.splitlines(keepends=True)
    if lines and lines[0].startswith("---"):
        for index, line in enumerate(lines[1:], start=1):
            if line.startswith("---"):
                block = "".join(lines[1:index])
                try:
                    options = yaml.safe_load(block) or {}
                except yaml.YAMLError as exc:
                    raise SampleError(path, fence.line, f"options block is not YAML: {exc}") from exc
                if not isinstance(options, dict):
                    raise SampleError(path, fence.line, "options block must be a YAML mapping")
                return options, "".join(lines[index + 1 :]), fence.line + index + 2
        raise SampleError(path, fence.line, "options block opened with --- is never closed")
    options = {}
    index = 0
    # ``:key: value`` lines; a line of colons opens a nested colon fence (``:::{tab-item}``), not an option.
    while index < len(lines) and lines[index].startswith(":") and not lines[index].startswith(":::"):
        key, _, value = lines[index][1:].partition(":")
        options[key.strip()] = value.strip()
        index += 1
    return options, "".join(lines[index:]), fence.line + index + 1


def _directives(text: str, path: str, offset: int = 0) -> Iterator[Sample]:
    for fence in _fences(text, offset):
        if not fence.info.startswith("{"):
            continue
        name, _, argument = fence.info[1:].partition("}")
        options, body, body_line = _split_options(fence, path)
        if name == DIRECTIVE:
            yield make_sample(argument.strip(), dict(options), body, path, fence.line)
        else:
            yield from _directives(body, path, body_line - 1)


def samples_in_text(text: str, path: str) -> list[Sample]:
    return list(_directives(text, path))


def pages(docs: Path) -> list[Path]:
    return sorted(p for p in docs.rglob("*.md") if not p.name.startswith("_"))


def collect(docs: Path, root: Path) -> list[Sample]:
    """All samples of the pages under ``docs``; duplicate names are an error."""
    seen: dict[str, Sample] = {}
    for page in pages(docs):
        rel = page.relative_to(root).as_posix()
        for sample in samples_in_text(page.read_text(), rel):
            if sample.name in seen:
                first = seen[sample.name]
                raise SampleError(
                    rel, sample.line, f"sample {sample.name!r} already defined at {first.page}:{first.line}"
                )
            seen[sample.name] = sample
    return list(seen.values())


def rendered_files(sample: Sample) -> dict[str, str]:
    """The files of ``samples/<name>/`` exactly as extraction writes them."""
    files = {
        sample.filename: sample.code,
        SPEC_FILE: json.dumps(sample.spec(), indent=2, sort_keys=True) + "\n",
    }
    if sample.kind == "kmod":
        for template in ("Kbuild", "Makefile"):
            text = (kmod_dir() / f"{template}.in").read_text()
            files[template] = text.replace("@NAME@", sample.name)
    return files


def write(samples: list[Sample], out: Path) -> None:
    """Write ``out/<name>/`` for each sample and drop directories of removed ones."""
    out.mkdir(parents=True, exist_ok=True)
    names = {s.name for s in samples}
    for stale in out.iterdir():
        if stale.is_dir() and stale.name not in names:
            shutil.rmtree(stale)
    for sample in samples:
        directory = out / sample.name
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir()
        for filename, text in rendered_files(sample).items():
            (directory / filename).write_text(text)


def differences(samples: list[Sample], out: Path) -> list[str]:
    """What in ``out`` differs from what extraction would write; empty when in sync."""
    problems = []
    names = {s.name for s in samples}
    present = {p.name for p in out.iterdir() if p.is_dir()} if out.is_dir() else set()
    problems += [f"{out / n}: no page defines this sample" for n in sorted(present - names)]
    for sample in samples:
        directory = out / sample.name
        expected = rendered_files(sample)
        actual = {p.name for p in directory.iterdir()} if directory.is_dir() else set()
        problems += [f"{directory / n}: not made by extraction" for n in sorted(actual - set(expected))]
        for filename, text in expected.items():
            path = directory / filename
            if not path.is_file():
                problems.append(f"{path}: missing")
            elif path.read_text() != text:
                problems.append(f"{path}: differs from {sample.page}:{sample.line}")
    return problems


def load_samples(root: Path, names: list[str], fixtures_into: Path | None) -> list[tuple[Sample, Path]]:
    """The extracted samples to verify, each with its directory, after checking samples/ is in sync.

    With ``fixtures_into``, the fault fixtures (test data, not pages) are extracted there and come
    first, so that the good samples run after them in the same boot.  ``names`` selects by name.
    """
    problems = differences(collect(root / "docs", root), root / "samples")
    if problems:
        raise SamplesError(f"samples/ is out of sync with docs/ ({problems[0]}): run 'kprobe-docs extract'")
    chosen: list[tuple[Sample, Path]] = []
    if fixtures_into is not None:
        fixtures = collect(root / FIXTURES, root)
        write(fixtures, fixtures_into)
        chosen += [(s, fixtures_into / s.name) for s in fixtures]
    chosen += [(load_sample(d), d) for d in sorted((root / "samples").iterdir()) if d.is_dir()]
    unknown = sorted(set(names) - {s.name for s, _ in chosen})
    if unknown:
        raise SamplesError(f"no sample named {unknown[0]!r}")
    return [(s, d) for s, d in chosen if not names or s.name in names]
