"""Where each page comes from: a footer with the commit, the build date and the result runs it renders,
and the ``kprobe-runs`` directive, the list of every run the site merges.

The directives that show results note the runs they drew on for their page
(``sphinxext.note_runs``); the footer is added once the page is resolved, so the HTML
site and each man page carry it alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util.docutils import SphinxDirective

from ..sources import revision
from ..store import results
from . import sphinxext
from .sphinxext import Cell, note_runs, shown, table_of


def _purge(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    sphinxext.page_runs(env).pop(docname, None)


def _merge(app: Sphinx, env: BuildEnvironment, docnames: set[str], other: BuildEnvironment) -> None:
    for docname, runs in sphinxext.page_runs(other).items():
        if docname in docnames:
            sphinxext.page_runs(env).setdefault(docname, set()).update(runs)


def _run_text(run: results.RunSummary) -> str:
    return f"{run.id} ({', '.join(sorted(run.targets)) or 'no targets'}; finished {run.finished})"


def _built(app: Sphinx) -> str:
    """What every page says of its build: the commit and the date, found once per build."""
    said: str | None = getattr(app, "_kd_built", None)
    if said is None:
        said = f"Built from commit {revision.commit(Path(app.confdir))} on {revision.date_of(revision.build_epoch())}."
        app._kd_built = said  # type: ignore[attr-defined]
    return said


def footer_text(app: Sphinx, docname: str) -> str:
    """The provenance sentence of one page."""
    built = _built(app)
    newest = sphinxext.newest_results(app)
    runs = [newest.runs[r] for r in sorted(sphinxext.page_runs(app.env).get(docname, set())) if r in newest.runs]
    if not runs:
        return f"{built} This page renders no verification results."
    return f"{built} Results rendered from run(s): {'; '.join(_run_text(run) for run in runs)}."


def _add_footer(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """The provenance sentence at the end of the page: a paragraph on the site, a PROVENANCE section in man."""
    para = nodes.paragraph("", "", nodes.Text(shown(footer_text(app, docname))), classes=["kd-page-provenance"])
    page = doctree.next_node(nodes.section) or doctree
    if app.builder.format == "html":
        page += para
    else:
        page += nodes.section("", nodes.title("", "Provenance"), para, ids=["kd-provenance"], names=["provenance"])


def _runners(run: results.RunSummary) -> str:
    return ", ".join(sorted({f.get("provenance", {}).get("runner", "qemu") for f in run.targets.values()}))


def _run_row(run: results.RunSummary) -> list[Cell]:
    kernels = sphinxext._para(*(
        nodes.literal("", shown(f"{name}: {facts.get('provenance', {}).get('kernel_release', '?')}"))
        for name, facts in sorted(run.targets.items())
    ))  # fmt: skip
    return [nodes.literal("", shown(run.id)), shown(run.started), shown(run.finished), _runners(run), kernels,
            str(run.records), nodes.literal("", shown(run.file))]  # fmt: skip


class RunsDirective(SphinxDirective):
    """``kprobe-runs``: every results file the site merges, with its run, dates, runner and kernels."""

    def run(self) -> list[nodes.Node]:
        newest = sphinxext.newest_results(self.env.app)
        note_runs(self.env, newest.runs)
        if not newest.runs:
            return [sphinxext._para(nodes.Text("No results yet: run kprobe-docs verify."))]
        rows = [_run_row(run) for _, run in sorted(newest.runs.items())]
        header = ["run", "started", "finished", "runner", "targets: kernel", "records", "results file"]
        out: list[nodes.Node] = [table_of(header, rows)]
        for problem in newest.problems:
            out.append(sphinxext._para(nodes.Text("Left out: "), nodes.literal("", shown(problem))))
        return out


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("kprobe-runs", RunsDirective)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("doctree-resolved", _add_footer)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
