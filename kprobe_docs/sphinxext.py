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
LABELS = {"pass": "pass", "fail": "FAIL", "not-claimed": "not claimed"}


def _to_root(docname: str) -> str:
    """The relative path from a page to the site's root, for files written beside the pages."""
    return "../" * docname.count("/")


def newest_results(app: Sphinx) -> results.Newest:
    """The newest results, read once per build."""
    cached: results.Newest | None = getattr(app, "_kd_results", None)
    if cached is None:
        try:
            cached = results.newest(Path(app.confdir) / "results")
        except results.ResultsError as exc:
            LOGGER.warning("kprobe-docs: %s", exc)
            cached = results.Newest()
        app._kd_results = cached  # type: ignore[attr-defined]
    return cached


def records_for(app: Sphinx, sample: str) -> list[Record]:
    found = (r for (s, _), r in newest_results(app).records.items() if s == sample)
    return sorted(found, key=lambda r: r.target)


def label(record: Record) -> str:
    """The verdict as the pages word it, in badges, tabs and the matrix."""
    if record.build.get("status") == "expected-failure":
        return "fails to build, as claimed"
    return LABELS.get(record.verdict, record.verdict)


def _badge(record: Record, current: bool) -> nodes.inline:
    verdict = record.verdict
    text = label(record)
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


def captured_markdown(records: list[Record]) -> str:
    """A tab per target with its verdict, provenance and captured log, as MyST."""
    shown = [r for r in records if r.verdict != "not-claimed"]
    if not shown:
        return ""
    out = ["::::{tab-set}", ":class: kd-captured-tabs"]
    for record in shown:
        out += [f":::{{tab-item}} {record.target}", f"**{label(record)}**", ""]
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
        section = nodes.container(classes=["kd-sample", f"kd-kind-{sample.kind}"])
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
        uri = _to_root(docname) + f"_samples/{sample.name}.zip"
        holds = "source, Kbuild, Makefile" if sample.kind == "kmod" else "the Python program"
        link = nodes.reference("", f"Download {sample.name}.zip ({holds})", refuri=uri)
        return nodes.paragraph("", "", link, classes=["kd-download"])


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), line(["---"] * len(header)), *(line(r) for r in rows)]


class _ResultsTable(Directive):
    """Base of the directives that render a table from the newest results."""

    has_content = False

    def lines(self, newest: results.Newest) -> list[str]:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        app = self.state.document.settings.env.app
        newest = newest_results(app)
        container = nodes.container(classes=["kd-results-table"])
        if not newest.targets:
            container += nodes.paragraph("", "Not verified yet: no results. Run kprobe-docs verify.")
            return [container]
        source = StringList(self.lines(newest), source="kprobe-docs results")
        self.state.nested_parse(source, 0, container)
        return [container]


def _provenance_notes(newest: results.Newest) -> list[str]:
    notes = []
    for name, facts in sorted(newest.targets.items()):
        p = facts.get("provenance", {})
        notes.append(
            f"- `{name}`: {p.get('kernel_package', '?')} {p.get('kernel_version', '')}, run {p.get('date', '?')}"
        )
    return ["", *notes]


class KernelConfigDirective(_ResultsTable):
    """``kprobe-kernel-config``: the kprobes-related options of each target kernel's config."""

    def lines(self, newest: results.Newest) -> list[str]:
        targets = sorted(newest.targets)
        options = list(dict.fromkeys(o for t in targets for o in newest.targets[t].get("config", {})))
        rows = [[f"`{o}`", *(newest.targets[t].get("config", {}).get(o, "?") for t in targets)] for o in options]
        return [*_table(["option", *(f"`{t}`" for t in targets)], rows), *_provenance_notes(newest)]


class DebugfsDirective(_ResultsTable):
    """``kprobe-debugfs [SAMPLE]``: /sys/kernel/debug/kprobes per target, as the runs read it.

    With a sample name, the kprobes list captured while that sample was loaded
    comes first; then the files the guest read at boot.
    """

    optional_arguments = 1

    def lines(self, newest: results.Newest) -> list[str]:
        out: list[str] = []
        for name, facts in sorted(newest.targets.items()):
            debugfs = facts.get("debugfs", {})
            if not debugfs:
                continue
            entries = " ".join(debugfs.get("blacklist-entries", ["?"])).strip()
            out += [f"**{name}**", "", "```text"]
            record = newest.records.get((self.arguments[0], name)) if self.arguments else None
            if record is not None and record.kprobes:
                out += [f"# cat /sys/kernel/debug/kprobes/list    (with {record.sample} loaded)", *record.kprobes]
            out += ["# cat /sys/kernel/debug/kprobes/enabled", *debugfs.get("enabled", [])]
            out += ["# cat /proc/sys/debug/kprobes-optimization", *debugfs.get("kprobes-optimization", [])]
            out += [f"# head -n 5 /sys/kernel/debug/kprobes/blacklist   ({entries} lines in all)"]
            out += [*debugfs.get("blacklist-head", []), "```", ""]
        return out + _provenance_notes(newest)


def _matrix_cell(record: Record | None) -> str:
    if record is None:
        return "no result"
    return "**FAIL**" if record.verdict == "fail" else label(record)


class MatrixDirective(_ResultsTable):
    """``kprobe-matrix``: page samples x targets, pass / fail / not claimed, linked to their pages."""

    def lines(self, newest: results.Newest) -> list[str]:
        targets = sorted(newest.targets)
        pages = {s: r.page for (s, _), r in newest.records.items() if r.page.startswith("docs/")}
        rows = []
        for sample in sorted(pages):
            link = f"[{sample}](/{pages[sample].removeprefix('docs/')})"
            rows.append([link, *(_matrix_cell(newest.records.get((sample, t))) for t in targets)])
        return [*_table(["sample", *(f"`{t}`" for t in targets)], rows), *_provenance_notes(newest)]


class ArchesDirective(_ResultsTable):
    """``kprobe-arches``: per architecture, the kernels verified and how many samples passed."""

    def lines(self, newest: results.Newest) -> list[str]:
        rows = []
        for arch in sorted({f.get("arch", "?") for f in newest.targets.values()}):
            targets = sorted(t for t, f in newest.targets.items() if f.get("arch") == arch)
            mine = [r for (_, t), r in newest.records.items() if t in targets and r.page.startswith("docs/")]
            claimed = [r for r in mine if r.verdict != "not-claimed"]
            passed = sum(r.verdict == "pass" for r in claimed)
            kernels = ", ".join(f"`{t}`" for t in targets)
            rows.append([arch, kernels, f"{passed} of {len(claimed)} sample runs pass"])
        return _table(["Debian arch", "targets verified", "results"], rows)


class ListedDirective(_ResultsTable):
    """``kprobe-listed SAMPLE``: per target, the kprobes list lines while SAMPLE was loaded."""

    required_arguments = 1

    def lines(self, newest: results.Newest) -> list[str]:
        rows = []
        for target in sorted(newest.targets):
            record = newest.records.get((self.arguments[0], target))
            if record is not None and record.kprobes:
                kernel = record.provenance.get("kernel_release", "?")
                rows += [[f"`{target}`", f"`{kernel}`", f"`{line.strip()}`"] for line in record.kprobes]
        return _table(["target", "kernel", "/sys/kernel/debug/kprobes/list"], rows)


class BccBootsDirective(_ResultsTable):
    """``kprobe-bcc-boots``: per target, what the boot running the bcc twins cost and ran with."""

    def lines(self, newest: results.Newest) -> list[str]:
        rows = []
        for target in sorted(newest.targets):
            bcc = newest.targets[target].get("bcc") or {}
            if not bcc:
                continue
            said = dict(line.split(" ", 1) for line in bcc.get("runner", []) if " " in line)
            boots = ", ".join(f"{seconds:.1f} s" for seconds in bcc.get("boot_seconds", []))
            total = f"{bcc['seconds']:.1f} s" if "seconds" in bcc else "?"
            versions = f"python {said['python']}" if "python" in said else "?"
            rows.append([f"`{target}`", versions, boots or "?", said.get("compiled", "?"), total])
        header = ["target", "python, bcc", "QEMU start to agent", "one compile of all twins", "whole bcc boot"]
        return [*_table(header, rows), *_provenance_notes(newest)]


def _api_cell(prefix: str, target: str, probe: str, found: dict[str, Any] | None) -> str:
    if found is None:
        return "?"
    return f'<a href="{prefix}_logs/{target}/api-{probe}.txt">{"yes" if found["available"] else "no"}</a>'


class ApiMatrixDirective(_ResultsTable):
    """``kprobe-api-matrix``: which APIs a module can use per target, from compile probes.

    Each cell links to the probe's build log, written into the site under ``_logs/``.
    """

    def lines(self, newest: results.Newest) -> list[str]:
        targets = [t for t in sorted(newest.targets) if newest.targets[t].get("api")]
        probes = list(dict.fromkeys(p for t in targets for p in newest.targets[t]["api"]))
        prefix = _to_root(self.state.document.settings.env.docname)
        rows = []
        for probe in probes:
            found = [newest.targets[t]["api"].get(probe) for t in targets]
            what = next(f["what"] for f in found if f)
            cells = [_api_cell(prefix, t, probe, f) for t, f in zip(targets, found, strict=True)]
            rows.append([f"`{probe}`: {what}", *cells])
        return [*_table(["API", *(f"`{t}`" for t in targets)], rows), *_provenance_notes(newest)]


def _write_logs(app: Sphinx, newest: results.Newest) -> None:
    for target, facts in newest.targets.items():
        directory = Path(app.outdir) / "_logs" / target
        directory.mkdir(parents=True, exist_ok=True)
        for probe, found in facts.get("api", {}).items():
            (directory / f"api-{probe}.txt").write_text(found["log"])


def _write_files(app: Sphinx, exception: Exception | None) -> None:
    """Sample downloads and API probe logs, beside the HTML pages that link to them."""
    if exception is not None or app.builder.format != "html":
        return
    _write_logs(app, newest_results(app))
    out = Path(app.outdir) / "_samples"
    out.mkdir(exist_ok=True)
    for directory in sorted((Path(app.confdir) / "samples").iterdir()):
        if directory.is_dir():
            shutil.make_archive(str(out / directory.name), "zip", directory.parent, directory.name)


def _add_static(app: Sphinx) -> None:
    app.config.html_static_path.append(str(STATIC))


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive(DIRECTIVE, SampleDirective)
    app.add_directive("kprobe-kernel-config", KernelConfigDirective)
    app.add_directive("kprobe-debugfs", DebugfsDirective)
    app.add_directive("kprobe-matrix", MatrixDirective)
    app.add_directive("kprobe-arches", ArchesDirective)
    app.add_directive("kprobe-api-matrix", ApiMatrixDirective)
    app.add_directive("kprobe-listed", ListedDirective)
    app.add_directive("kprobe-bcc-boots", BccBootsDirective)
    app.connect("builder-inited", _add_static)
    app.connect("build-finished", _write_files)
    app.add_css_file("kprobe-docs.css")
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
