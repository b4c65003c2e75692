"""Render stage: the ``kprobe-sample`` directive and the results it shows.

The directive re-reads its page with the extractor's parser (one parser, one
set of errors), shows the code with a download of its sample directory, a
badge per target and the log captured by the newest run on each target.  It
only reads results; it never builds or runs anything.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging

from . import extract, results
from .results import Record
from .sample import DIRECTIVE, OPTION_KEYS, Sample, SampleError

LOGGER = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
BADGE_TEXT = {"pass": "pass", "fail": "fail", "not-claimed": "not claimed"}


def _results(app: Sphinx) -> dict[tuple[str, str], Record]:
    cached: dict[tuple[str, str], Record] | None = getattr(app, "_kd_results", None)
    if cached is None:
        directory = Path(app.confdir) / "results"
        try:
            cached = results.newest(directory)
        except results.ResultsError as exc:
            LOGGER.warning("kprobe-docs: %s", exc)
            cached = {}
        app._kd_results = cached  # type: ignore[attr-defined]
    return cached


def records_for(app: Sphinx, sample: str) -> list[Record]:
    return sorted((r for (s, _), r in _results(app).items() if s == sample), key=lambda r: r.target)


def _badge(record: Record, current: bool) -> nodes.inline:
    verdict = record.verdict
    if verdict == "pass" and record.build.get("status") == "expected-failure":
        text = "fails to build, as claimed"
    else:
        text = BADGE_TEXT.get(verdict, verdict)
    if not current:
        text += " (older source)"
    badge = nodes.inline("", "", classes=["kd-badge", f"kd-{verdict}"])
    badge += nodes.inline("", record.target, classes=["kd-badge-target"])
    badge += nodes.inline("", f" {text} ", classes=["kd-badge-verdict"])
    return badge


def _provenance(record: Record) -> str:
    p = record.provenance
    parts = [f"{p.get('kernel_package', '?')} {p.get('kernel_version', '')}".strip()]
    if p.get("qemu"):
        parts.append(f"{p['qemu'].replace('QEMU emulator version', 'QEMU')} ({p.get('accelerator', '?')})")
    parts.append(f"run {p.get('date', '?')}, harness {p.get('harness', '?')}, source {record.source_hash}")
    return "; ".join(parts)


def _captured_lines(record: Record) -> list[str]:
    lines = record.log or record.console
    if record.build.get("status") not in (None, "ok"):
        lines = [record.build.get("problem", "")]
    if record.kprobes:
        lines = [*lines, "", "# cat /sys/kernel/debug/kprobes/list", *record.kprobes]
    return lines


def _verdict_text(record: Record) -> str:
    if record.build.get("status") == "expected-failure":
        return "fails to build, as the page says"
    return {"pass": "passed", "fail": "FAILED"}.get(record.verdict, record.verdict)


def captured_markdown(records: list[Record]) -> str:
    """A tab per target with its verdict, provenance and captured log, as MyST."""
    shown = [r for r in records if r.verdict != "not-claimed"]
    if not shown:
        return ""
    out = ["::::{tab-set}", ":class: kd-captured-tabs"]
    for record in shown:
        out += [f":::{{tab-item}} {record.target}", f"**{_verdict_text(record)}**", ""]
        if record.reason:
            out += [f"Result: `{record.reason.replace('`', chr(39))}`", ""]
        out += [f"{{sub}}`{_provenance(record)}`", ""]
        lines = _captured_lines(record)
        if lines:
            out += ["```{code-block} text", ":class: kd-captured", *lines, "```"]
        out += [":::", ""]
    out.append("::::")
    return "\n".join(out)


class SampleDirective(Directive):
    """``kprobe-sample``: a verified sample, its badges and its captured output."""

    required_arguments = 1
    has_content = True
    option_spec: ClassVar[dict[str, Any]] = {key: directives.unchanged for key in OPTION_KEYS}

    def _sample(self) -> Sample:
        env = self.state.document.settings.env
        path = Path(env.doc2path(env.docname))
        rel = path.relative_to(Path(env.app.confdir)).as_posix()
        try:
            samples = extract.samples_in_text(path.read_text(), rel)
        except SampleError as exc:
            raise self.error(str(exc)) from exc
        found = [s for s in samples if s.name == self.arguments[0]]
        if not found:
            raise self.error(f"{rel}:{self.lineno}: {DIRECTIVE} {self.arguments[0]}: not found by the extractor")
        return found[0]

    def run(self) -> list[nodes.Node]:
        sample = self._sample()
        app = self.state.document.settings.env.app
        section = nodes.container(classes=["kd-sample"])
        caption = sample.extra.get("caption", sample.filename)
        section += nodes.paragraph("", "", nodes.strong("", caption), classes=["kd-caption"])
        section += self._badges(app, sample)
        language = "c" if sample.kind == "kmod" else "python"
        code = nodes.literal_block(sample.code, sample.code, language=language, classes=["kd-code"])
        section += code
        section += self._download(sample)
        captured = captured_markdown(records_for(app, sample.name))
        if captured:
            section += nodes.rubric("", "Captured output")
            self.state.nested_parse(StringList(captured.splitlines(), source="kprobe-docs results"), 0, section)
        return [section]

    def _badges(self, app: Sphinx, sample: Sample) -> nodes.paragraph:
        para = nodes.paragraph(classes=["kd-badges"])
        found = records_for(app, sample.name)
        if not found:
            para += nodes.inline("", "not verified yet", classes=["kd-badge", "kd-unverified"])
        for record in found:
            para += _badge(record, record.source_hash == sample.source_hash())
            para += nodes.Text(" ")
        return para

    def _download(self, sample: Sample) -> nodes.paragraph:
        docname = self.state.document.settings.env.docname
        uri = "../" * docname.count("/") + f"_samples/{sample.name}.zip"
        link = nodes.reference("", f"Download {sample.name}.zip (source, Kbuild, Makefile)", refuri=uri)
        return nodes.paragraph("", "", link, classes=["kd-download"])


def _write_downloads(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir) / "_samples"
    out.mkdir(exist_ok=True)
    for directory in sorted((Path(app.confdir) / "samples").iterdir()):
        if directory.is_dir():
            shutil.make_archive(str(out / directory.name), "zip", directory.parent, directory.name)


def _add_static(app: Sphinx) -> None:
    app.config.html_static_path.append(str(STATIC))


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive(DIRECTIVE, SampleDirective)
    app.connect("builder-inited", _add_static)
    app.connect("build-finished", _write_downloads)
    app.add_css_file("kprobe-docs.css")
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
