"""Render stage: the ``kprobe-sample`` directive and the results it shows.

The directive re-reads its page with the extractor's parser (one parser, one
set of errors), shows the code with a download of its sample directory, a
badge per target and the log captured by the newest run on each target.  It
only reads results; it never builds or runs anything.

Results may come from machines we do not control, so nothing read from them
is ever parsed as markup: every table, tab and log is built here as docutils
nodes, and every string from a results file goes into a text or literal node
(control characters shown as escapes).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeAlias

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.errors import ExtensionError
from sphinx.util import logging
from sphinx_design.shared import create_component

from ..publish import archive
from ..sources import extract, revision
from ..sources.sample import DIRECTIVE, OPTION_KEYS, Sample, SampleError
from ..store import results
from ..store.results import Record

LOGGER = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
LABELS = {
    "pass": "pass",
    "fail": "FAIL",
    "not-claimed": "not claimed",
    "error": "error: not judged",
    "skipped": "skipped here",
}
# What a text node must not carry: C0 controls but tab and newline, DEL, and lone surrogates (not UTF-8).
CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")
Cell: TypeAlias = "str | nodes.Node"


def shown(value: object) -> str:
    """A string from a results file, as text: control characters as visible escapes (``\\x1b``)."""
    return CONTROL_RE.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", str(value))


def _literal(value: object) -> nodes.literal:
    return nodes.literal("", shown(value))


def _para(*children: nodes.Node, classes: Sequence[str] = ()) -> nodes.paragraph:
    return nodes.paragraph("", "", *children, classes=list(classes))


def _lines_block(lines: Sequence[str], classes: Sequence[str] = ()) -> nodes.literal_block:
    text = "\n".join(shown(line) for line in lines)
    return nodes.literal_block(text, text, language="text", classes=list(classes))


def _entry(cell: Cell) -> nodes.entry:
    if isinstance(cell, nodes.entry):  # a cell that brings its own classes
        return cell
    entry = nodes.entry()
    if isinstance(cell, str):
        entry += _para(nodes.Text(shown(cell)))
    else:  # a paragraph as it is: HTML has no paragraph inside a paragraph
        entry += cell if isinstance(cell, nodes.paragraph) else _para(cell)
    return entry


def table_of(header: Sequence[Cell], rows: Sequence[Sequence[Cell]], classes: Sequence[str] = ()) -> nodes.table:
    """A table of text and nodes, built as nodes: no cell is ever parsed."""
    table = nodes.table(classes=list(classes))
    group = nodes.tgroup(cols=len(header))
    table += group
    group += [nodes.colspec(colwidth=1) for _ in header]
    head = nodes.thead()
    head += nodes.row("", *(_entry(c) for c in header))
    body = nodes.tbody()
    body += [nodes.row("", *(_entry(c) for c in row)) for row in rows]
    group += [head, body]
    return table


def _to_root(docname: str) -> str:
    """The relative path from a page to the site's root, for files written beside the pages."""
    return "../" * docname.count("/")


def newest_results(app: Sphinx) -> results.Newest:
    """The newest results, read once per build; a file that cannot be used is a warning naming it."""
    cached: results.Newest | None = getattr(app, "_kd_results", None)
    if cached is None:
        cached = results.newest(Path(app.confdir) / "results")
        for problem in cached.problems:
            LOGGER.warning("kprobe-docs: results file left out: %s", problem, type="kprobe-docs", subtype="results")
        app._kd_results = cached  # type: ignore[attr-defined]
    return cached


def page_runs(env: BuildEnvironment) -> dict[str, set[str]]:
    """Per page, the runs whose results it renders (kept in the environment, so incremental builds keep them)."""
    if not hasattr(env, "kd_page_runs"):
        env.kd_page_runs = {}  # type: ignore[attr-defined]
    found: dict[str, set[str]] = env.kd_page_runs  # type: ignore[attr-defined]
    return found


def note_runs(env: BuildEnvironment, runs: Iterable[str]) -> None:
    """The page being read renders results of these runs (its footer names them)."""
    page_runs(env).setdefault(env.docname, set()).update(runs)


def _results_stamp(directory: Path) -> str:
    """What changes when a results file is added, removed or rewritten."""
    listing = "".join(f"{p.name} {p.stat().st_size} {p.stat().st_mtime_ns}\n" for p in results.result_files(directory))
    return hashlib.sha256(listing.encode()).hexdigest()


def _outdated_by_results(app: Sphinx, env: BuildEnvironment, added: set[str], changed: set[str],
                         removed: set[str]) -> list[str]:  # fmt: skip
    """An incremental build (``tox -e serve``) reads again every page that renders results when they change."""
    stamp = _results_stamp(Path(app.confdir) / "results")
    before = getattr(env, "kd_results_stamp", None)
    env.kd_results_stamp = stamp  # type: ignore[attr-defined]
    return sorted(page_runs(env)) if before is not None and before != stamp else []


def records_for(app: Sphinx, sample: str) -> list[Record]:
    newest = newest_results(app)
    found = {key: r for key, r in newest.records.items() if key[0] == sample}
    note_runs(app.env, newest.runs_of(found))
    return sorted(found.values(), key=lambda r: r.target)


def label(record: Record) -> str:
    """The verdict as the pages word it, in badges, tabs and the matrix."""
    if record.build.get("status") == "expected-failure":
        return "fails to build, as claimed"
    return LABELS.get(record.verdict, record.verdict)


def _badge(record: Record, current: bool) -> nodes.inline:
    text = label(record)
    if not current:
        text += " (older source)"
    badge = nodes.inline("", "", classes=["kd-badge", f"kd-{record.verdict}"])
    badge += nodes.inline("", shown(record.target), classes=["kd-badge-target"])
    badge += nodes.inline("", f" {text} ", classes=["kd-badge-verdict"])
    return badge


def _provenance(record: Record) -> str:
    p = record.provenance
    parts = [f"{p.get('kernel_package', '?')} {p.get('kernel_version', '')}".strip()]
    if p.get("runner") == "host":
        parts.append(f"on {p.get('machine', '?')}, {p.get('machine_kind', '?')}: {p.get('dmi_product', '?')}")
    if p.get("qemu"):
        parts.append(f"{p['qemu'].replace('QEMU emulator version', 'QEMU')} ({p.get('accelerator', '?')})")
    if record.kind in ("bpftrace", "perf"):
        parts.append(p.get(record.kind, "?"))
    elif p.get("bcc"):
        parts.append(", ".join(p.get(key, "?") for key in ("bcc", "llvm", "python")))
    parts.append(f"run {p.get('date', '?')}, harness {p.get('harness', '?')}, source {record.source_hash}")
    return "; ".join(parts)


def _captured_lines(record: Record) -> list[str]:
    lines = record.log or record.console
    if record.build.get("status") not in (None, "ok"):
        lines = [record.build.get("problem", "")]
    if record.kprobes:
        lines = [*lines, "", "# cat /sys/kernel/debug/kprobes/list", *record.kprobes]
    return lines


def _captured_tab(record: Record) -> nodes.container:
    item = create_component("tab-item", classes=["sd-tab-item"], selected=False)
    item += nodes.rubric("", "", nodes.Text(shown(record.target)), classes=["sd-tab-label"])
    content = create_component("tab-content", classes=["sd-tab-content"])
    content += _para(nodes.strong("", label(record)))
    if record.reason:
        content += _para(nodes.Text("Result: "), _literal(record.reason), classes=["kd-reason"])
    content += _para(nodes.Text(shown(_provenance(record))), classes=["kd-provenance"])
    lines = _captured_lines(record)
    if lines:
        content += _lines_block(lines, classes=["kd-captured"])
    item += content
    return item


def captured(records: list[Record]) -> nodes.container | None:
    """A tab per claimed target with its verdict, provenance and captured log; None when no target claims it."""
    claimed = [r for r in records if r.verdict not in ("not-claimed", "skipped")]
    if not claimed:
        return None
    tab_set = create_component("tab-set", classes=["sd-tab-set", "kd-captured-tabs"])
    tab_set += [_captured_tab(record) for record in claimed]
    return tab_set


# How each kind's code is highlighted, and what its download holds.
LANGUAGES = {"kmod": "c", "bcc": "python", "tracefs": "sh", "bpftrace": "text", "perf": "sh"}
HOLDS = {"kmod": "source, Kbuild, Makefile", "bcc": "the Python program", "tracefs": "the shell script",
         "bpftrace": "the bpftrace program", "perf": "the shell script"}  # fmt: skip


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
        section = nodes.container(classes=["kd-sample", f"kd-kind-{sample.kind}", f"kd-sample-{sample.name}"])
        caption = sample.extra.get("caption", sample.filename)
        section += nodes.paragraph("", "", nodes.strong("", caption), classes=["kd-caption"])
        section += self._badges(app, sample)
        section += nodes.literal_block(sample.code, sample.code, language=LANGUAGES[sample.kind], classes=["kd-code"])
        section += self._download(sample)
        tabs = captured(records_for(app, sample.name))
        if tabs is not None:
            section += nodes.rubric("", "Captured output")
            section += tabs
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
        holds = HOLDS[sample.kind]
        link = nodes.reference("", f"Download {sample.name}.zip ({holds})", refuri=uri)
        return nodes.paragraph("", "", link, classes=["kd-download"])


class _ResultsTable(Directive):
    """Base of the directives that render a table from the newest results."""

    has_content = False

    def nodes_for(self, newest: results.Newest) -> list[nodes.Node]:
        raise NotImplementedError

    @property
    def docname(self) -> str:
        return str(self.state.document.settings.env.docname)

    def run(self) -> list[nodes.Node]:
        app = self.state.document.settings.env.app
        newest = newest_results(app)
        note_runs(app.env, {*newest.record_run.values(), *newest.target_run.values()})
        container = nodes.container(classes=["kd-results-table"])
        if not newest.targets:
            container += nodes.paragraph("", "Not verified yet: no results. Run kprobe-docs verify.")
            return [container]
        container += self.nodes_for(newest)
        return [container]


def _provenance_notes(newest: results.Newest) -> nodes.bullet_list:
    notes = nodes.bullet_list()
    for name, facts in sorted(newest.targets.items()):
        p = facts.get("provenance", {})
        run = newest.runs.get(newest.target_run.get(name, ""))
        when = p.get("date") or (run.finished if run else "?")  # a test machine's facts carry no date of their own
        kernel = f"{p.get('kernel_package', '?')} {p.get('kernel_version', '')}".strip()
        text = f": {kernel}, run {when}"
        notes += nodes.list_item("", _para(_literal(name), nodes.Text(shown(text))))
    return notes


def _target_header(targets: list[str]) -> list[Cell]:
    return [_literal(t) for t in targets]


class KernelConfigDirective(_ResultsTable):
    """``kprobe-kernel-config``: the kprobes-related options of each target kernel's config."""

    def nodes_for(self, newest: results.Newest) -> list[nodes.Node]:
        targets = sorted(newest.targets)
        options = list(dict.fromkeys(o for t in targets for o in newest.targets[t].get("config", {})))
        rows = [[_literal(o), *(newest.targets[t].get("config", {}).get(o, "?") for t in targets)] for o in options]
        return [table_of(["option", *_target_header(targets)], rows), _provenance_notes(newest)]


class DebugfsDirective(_ResultsTable):
    """``kprobe-debugfs [SAMPLE]``: /sys/kernel/debug/kprobes per target, as the runs read it.

    With a sample name, the kprobes list captured while that sample was loaded
    comes first; then the files the guest read at boot.
    """

    optional_arguments = 1

    def nodes_for(self, newest: results.Newest) -> list[nodes.Node]:
        out: list[nodes.Node] = []
        for name, facts in sorted(newest.targets.items()):
            debugfs = facts.get("debugfs", {})
            if not debugfs:
                continue
            entries = " ".join(debugfs.get("blacklist-entries", ["?"])).strip()
            lines: list[str] = []
            record = newest.records.get((self.arguments[0], name)) if self.arguments else None
            if record is not None and record.kprobes:
                lines += [f"# cat /sys/kernel/debug/kprobes/list    (with {record.sample} loaded)", *record.kprobes]
            lines += ["# cat /sys/kernel/debug/kprobes/enabled", *debugfs.get("enabled", [])]
            lines += ["# cat /proc/sys/debug/kprobes-optimization", *debugfs.get("kprobes-optimization", [])]
            lines += [f"# head -n 5 /sys/kernel/debug/kprobes/blacklist   ({entries} lines in all)"]
            lines += debugfs.get("blacklist-head", [])
            out += [_para(nodes.strong("", shown(name))), _lines_block(lines)]
        return [*out, _provenance_notes(newest)]


def doc_link(docname: str, text: str, known: set[str]) -> Cell:
    """A link to another page of the site, resolved by Sphinx; plain text when no such page exists."""
    if docname not in known:
        return text
    ref: nodes.Node = addnodes.pending_xref(
        "", refdomain="std", reftype="doc", reftarget=f"/{docname}", refexplicit=True, refwarn=True
    )
    ref += nodes.inline("", shown(text), classes=["xref", "std", "std-doc"])
    return ref


# The matrix cells' symbols, beside a text for screen readers; the legend above the table spells them out.
SYMBOLS = {"pass": "✓", "fails to build, as claimed": "⊘", "FAIL": "✗", "not claimed": "·", "no result": "?"}
SYMBOLS |= {"error: not judged": "!", "skipped here": "\u2013"}  # an en dash


def kernel_of(facts: results.TargetFacts) -> tuple[int, int]:
    """A target's kernel as major and minor version, from the release its run booted; (0, 0) if unknown."""
    found = re.match(r"(\d+)\.(\d+)", str(facts.get("provenance", {}).get("kernel_release", "")))
    return (int(found[1]), int(found[2])) if found else (0, 0)


def matrix_targets(newest: results.Newest) -> list[str]:
    """The targets grouped by architecture, each group by kernel version, oldest first."""
    return sorted(newest.targets, key=lambda t: (newest.targets[t].get("arch", "?"), kernel_of(newest.targets[t]), t))


def _token(text: object) -> str:
    """A results file's word made fit for a class name, whatever the file holds."""
    return re.sub(r"[^a-z0-9]+", "_", str(text).lower())[:32] or "unknown"


def _column_classes(facts: results.TargetFacts, first_of_arch: bool) -> list[str]:
    """What every cell of a target's column carries: its arch and kernel (the filters), and the group's edge."""
    major, minor = kernel_of(facts)
    edge = ["kd-group-start"] if first_of_arch else []
    return ["kd-col", f"kd-arch-{_token(facts.get('arch', 'unknown'))}", f"kd-kernel-{major}-{minor}", *edge]


def _short_name(target: str, arch: str) -> str:
    """The part of a target's name that its column's arch and kernel lines do not already say."""
    return target.removesuffix(f"-{arch}").replace("debian-", "", 1) or target


def _matrix_header(target: str, facts: results.TargetFacts, first_of_arch: bool) -> nodes.entry:
    arch = str(facts.get("arch", "?"))
    major, minor = kernel_of(facts)
    entry = nodes.entry(classes=_column_classes(facts, first_of_arch))
    name = nodes.abbreviation("", shown(_short_name(target, arch)), explanation=shown(target))
    entry += _para(name, classes=["kd-col-name"])
    full = nodes.inline("", shown(target), classes=["kd-sr"])
    entry += _para(nodes.Text(shown(f"{major}.{minor} {arch}")), full, classes=["kd-col-kernel"])
    return entry


def _matrix_cell(record: Record | None, facts: results.TargetFacts, first_of_arch: bool) -> nodes.entry:
    text = label(record) if record is not None else "no result"
    verdict = "xfail" if text == "fails to build, as claimed" else _token(record.verdict if record else "none")
    entry = nodes.entry(classes=[*_column_classes(facts, first_of_arch), f"kd-cell-{verdict}"])
    symbol = nodes.inline("", SYMBOLS.get(text, "?"), classes=["kd-sym"])
    entry += _para(symbol, nodes.inline("", shown(text), classes=["kd-sr"]))
    return entry


def _matrix_legend() -> nodes.paragraph:
    legend = _para(nodes.Text("Cells: "), classes=["kd-matrix-legend"])
    for index, (text, symbol) in enumerate(SYMBOLS.items()):
        legend += nodes.inline("", f"{symbol} {text}", classes=["kd-legend-item"])
        legend += nodes.Text(", " if index < len(SYMBOLS) - 1 else ".")
    return legend


class MatrixDirective(_ResultsTable):
    """``kprobe-matrix``: page samples x targets, grouped by arch and kernel, linked to their pages.

    Each cell is a symbol, coloured, with the verdict's words for screen readers; the header row and the
    sample column stay in view while the table scrolls, and a script lets the reader filter the columns.
    """

    def nodes_for(self, newest: results.Newest) -> list[nodes.Node]:
        targets = matrix_targets(newest)
        facts = [newest.targets[t] for t in targets]
        starts = [i == 0 or f.get("arch") != facts[i - 1].get("arch") for i, f in enumerate(facts)]
        known = set(self.state.document.settings.env.found_docs)
        pages = {s: r.page for (s, _), r in newest.records.items() if r.page.startswith("docs/")}
        columns = list(zip(targets, facts, starts, strict=True))
        header: list[Cell] = ["sample", *(_matrix_header(t, f, s) for t, f, s in columns)]
        rows: list[list[Cell]] = []
        for sample in sorted(pages):
            link = doc_link(pages[sample].removeprefix("docs/").removesuffix(".md"), sample, known)
            rows.append([link, *(_matrix_cell(newest.records.get((sample, t)), f, s) for t, f, s in columns)])
        return [_matrix_legend(), table_of(header, rows, classes=["kd-matrix"]), _provenance_notes(newest)]


class ArchesDirective(_ResultsTable):
    """``kprobe-arches``: per architecture, the kernels verified and how many samples passed."""

    def nodes_for(self, newest: results.Newest) -> list[nodes.Node]:
        rows: list[list[Cell]] = []
        for arch in sorted({f.get("arch", "?") for f in newest.targets.values()}):
            targets = sorted(t for t, f in newest.targets.items() if f.get("arch", "?") == arch)
            mine = [r for (_, t), r in newest.records.items() if t in targets and r.page.startswith("docs/")]
            claimed = [r for r in mine if r.verdict != "not-claimed"]
            passed = sum(r.verdict == "pass" for r in claimed)
            kernels = _para(*(_literal(t) for t in targets))
            rows.append([arch, kernels, f"{passed} of {len(claimed)} sample runs pass"])
        return [table_of(["Debian arch", "targets verified", "results"], rows)]


class ListedDirective(_ResultsTable):
    """``kprobe-listed SAMPLE``: per target, the kprobes list lines while SAMPLE was loaded."""

    required_arguments = 1

    def nodes_for(self, newest: results.Newest) -> list[nodes.Node]:
        rows: list[list[Cell]] = []
        for target in sorted(newest.targets):
            record = newest.records.get((self.arguments[0], target))
            if record is not None and record.kprobes:
                kernel = record.provenance.get("kernel_release", "?")
                rows += [[_literal(target), _literal(kernel), _literal(line.strip())] for line in record.kprobes]
        return [table_of(["target", "kernel", "/sys/kernel/debug/kprobes/list"], rows)]


class BccBootsDirective(_ResultsTable):
    """``kprobe-bcc-boots``: per target, what the boot running the bcc twins cost and ran with."""

    def nodes_for(self, newest: results.Newest) -> list[nodes.Node]:
        rows: list[list[Cell]] = []
        for target in sorted(newest.targets):
            bcc = newest.targets[target].get("bcc") or {}
            if not bcc:
                continue
            said = dict(line.split(" ", 1) for line in bcc.get("runner", []) if " " in line)
            boots = ", ".join(f"{seconds:.1f} s" for seconds in bcc.get("boot_seconds", []))
            total = f"{bcc['seconds']:.1f} s" if "seconds" in bcc else "?"
            versions = ", ".join(bcc.get("versions", {}).values()) or (
                f"python {said['python']}" if "python" in said else "?"
            )
            rows.append([_literal(target), versions, boots or "?", said.get("compiled", "?"), total])
        header = ["target", "bcc, LLVM, python", "QEMU start to agent", "one compile of all twins", "whole bcc boot"]
        return [table_of(header, rows), _provenance_notes(newest)]


class ApiMatrixDirective(_ResultsTable):
    """``kprobe-api-matrix``: which APIs a module can use per target, from compile probes.

    Each cell links to the probe's build log, written into the site under ``_logs/``.
    """

    def nodes_for(self, newest: results.Newest) -> list[nodes.Node]:
        targets = [t for t in sorted(newest.targets) if newest.targets[t].get("api")]
        probes = list(dict.fromkeys(p for t in targets for p in newest.targets[t].get("api", {})))
        prefix = _to_root(self.docname)
        rows: list[list[Cell]] = []
        for probe in probes:
            found = [newest.targets[t].get("api", {}).get(probe) for t in targets]
            what = next(f["what"] for f in found if f)
            cells: list[Cell] = []
            for target, probed in zip(targets, found, strict=True):
                text = "?" if probed is None else ("yes" if probed["available"] else "no")
                uri = f"{prefix}_logs/{target}/api-{probe}.txt"  # names are checked by the results schema
                cells.append(text if probed is None else nodes.reference("", text, refuri=uri))
            rows.append([_para(_literal(probe), nodes.Text(shown(f": {what}"))), *cells])
        return [table_of(["API", *_target_header(targets)], rows), _provenance_notes(newest)]


def is_machine(facts: results.TargetFacts) -> bool:
    """A target verified on a test machine (``--target host``), not in a QEMU guest of ours."""
    return facts.get("provenance", {}).get("runner") == "host"


class MachinesDirective(_ResultsTable):
    """``kprobe-machines``: the test machines whose results the pages show, and what they are."""

    def nodes_for(self, newest: results.Newest) -> list[nodes.Node]:
        rows: list[list[Cell]] = []
        for target, facts in sorted(newest.targets.items()):
            if not is_machine(facts):
                continue
            p = facts.get("provenance", {})
            mine = [r for (_, t), r in newest.records.items() if t == target and r.verdict not in ("not-claimed",)]
            passed = sum(r.verdict == "pass" for r in mine)
            machine = (
                f"{p.get('machine', '?')}: {p.get('dmi_vendor', '?')} {p.get('dmi_product', '?')}, {p.get('cpu', '?')}"
            )
            firmware = f"{p.get('secure_boot', '?')}; lockdown {p.get('lockdown', '?')}"
            kernel = f"{p.get('kernel_package', '?')} {p.get('kernel_version', '')}"
            rows.append([_literal(target), machine, p.get("machine_kind", "?"), p.get("os", "?"), kernel, firmware,
                         f"{passed} of {len(mine)} pass", p.get("date", "?")])  # fmt: skip
        if not rows:
            return [_para(nodes.Text("No results from test machines yet: run kprobe-docs verify --target host on one, "
                                     "then kprobe-docs results import its results file here."))]  # fmt: skip
        header = ["target", "machine", "kind", "system", "kernel", "firmware", "samples", "run"]
        return [table_of(header, rows)]


def _fixture_titles(text: str) -> list[tuple[int, str]]:
    """(line, title) of each second-level heading of a fixtures page."""
    return [(n, line[3:].strip()) for n, line in enumerate(text.splitlines(), start=1) if line.startswith("## ")]


class FaultsDirective(Directive):
    """``kprobe-faults``: each fault fixture of verify/fixtures/, what goes wrong in it, and what runs reported.

    The fixtures are test data, not pages: read here with the extractor, and
    shown with the newest verdict and reason on every target that ran them.
    """

    has_content = False

    def run(self) -> list[nodes.Node]:
        env = self.state.document.settings.env
        root = Path(env.app.confdir)
        path = root / extract.FIXTURES / "faults.md"
        env.note_dependency(str(path))
        text = path.read_text()
        titles = _fixture_titles(text)
        newest = newest_results(env.app)
        out: list[nodes.Node] = []
        for sample in extract.samples_in_text(text, path.relative_to(root).as_posix()):
            title = next((name for line, name in reversed(titles) if line < sample.line), sample.name)
            wanted = "must pass" if sample.name.startswith("fixture_") else "must fail, for its own reason"
            out.append(nodes.rubric("", title))
            out.append(_para(_literal(sample.name), nodes.Text(f": {wanted}.")))
            found = [r for (s, _), r in sorted(newest.records.items()) if s == sample.name]
            note_runs(env, newest.runs_of(r.key for r in found))
            rows: list[list[Cell]] = [[_literal(r.target), label(r), _literal(r.reason or "-")] for r in found]
            if rows:
                out.append(table_of(["target", "verdict", "what kprobe-docs reported"], rows))
            else:
                out.append(_para(nodes.Text("Not run yet: the verify suite runs the fixtures (tox -e verify).")))
        return out


def _write_logs(app: Sphinx, newest: results.Newest) -> None:
    for target, facts in newest.targets.items():
        directory = Path(app.outdir) / "_logs" / target
        directory.mkdir(parents=True, exist_ok=True)
        for probe, found in facts.get("api", {}).items():
            (directory / f"api-{probe}.txt").write_text(found["log"], errors="replace")


def _write_files(app: Sphinx, exception: Exception | None) -> None:
    """Sample downloads and API probe logs, beside the HTML pages that link to them."""
    if exception is not None or app.builder.format != "html":
        return
    _write_logs(app, newest_results(app))
    out = Path(app.outdir) / "_samples"
    out.mkdir(exist_ok=True)
    for directory in sorted((Path(app.confdir) / "samples").iterdir()):
        if directory.is_dir():
            archive.zip_dir(directory, out / f"{directory.name}.zip", revision.build_epoch())


def _check_samples(app: Sphinx) -> None:
    """Every sample of the site at once: a name defined twice stops the build, naming both places."""
    try:
        extract.collect(Path(app.srcdir), Path(app.confdir))
    except SampleError as exc:
        raise ExtensionError(f"kprobe-docs: {exc}") from exc


def _focusable_code(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Code blocks and wide tables scroll sideways; a keyboard reader reaches them only if they take focus
    (WCAG 2.1.1).  Furo wraps every table in a ``table-wrapper`` div, the part that scrolls."""
    body = context.get("body")
    if isinstance(body, str):
        body = body.replace("<pre>", '<pre tabindex="0">')
        context["body"] = body.replace('<div class="table-wrapper', '<div tabindex="0" class="table-wrapper')


def _add_static(app: Sphinx) -> None:
    app.config.html_static_path.append(str(STATIC))
    _check_samples(app)


def setup(app: Sphinx) -> dict[str, Any]:
    from . import arch_features, claims, lava_job, provenance  # they build on this module's helpers

    arch_features.setup(app)
    claims.setup(app)
    provenance.setup(app)
    lava_job.setup(app)
    app.add_directive(DIRECTIVE, SampleDirective)
    app.add_directive("kprobe-kernel-config", KernelConfigDirective)
    app.add_directive("kprobe-debugfs", DebugfsDirective)
    app.add_directive("kprobe-matrix", MatrixDirective)
    app.add_directive("kprobe-arches", ArchesDirective)
    app.add_directive("kprobe-api-matrix", ApiMatrixDirective)
    app.add_directive("kprobe-listed", ListedDirective)
    app.add_directive("kprobe-bcc-boots", BccBootsDirective)
    app.add_directive("kprobe-faults", FaultsDirective)
    app.add_directive("kprobe-machines", MachinesDirective)
    app.connect("builder-inited", _add_static)
    app.connect("build-finished", _write_files)
    app.connect("html-page-context", _focusable_code)
    app.connect("env-get-outdated", _outdated_by_results)
    app.add_css_file("kprobe-docs.css")
    app.add_js_file("kprobe-docs-matrix.js")
    return {"version": "1", "env_version": 2, "parallel_read_safe": True, "parallel_write_safe": True}
