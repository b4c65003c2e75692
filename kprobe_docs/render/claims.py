"""The ``claim`` directive, the ledger of every claim, and the check that leaves none unbound.

A claim renders as its sentences followed by what proves them: for each
proving expectation, the targets where its sample passed with it, and where
it failed (the claim is then marked failing where it stands, not only on the
ledger); for a cited claim, its source.  The ``kprobe-claims`` directive
renders the ledger: one row per claim of the whole site, with its verdict on
every target.  At the start of a build every page is checked for statements
(error codes, probe flags, version boundaries, defaults) outside a claim:
each is a warning naming page and line, so ``-W`` fails the build.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from ..sources import claims as source
from ..sources import extract
from ..sources.claims import ClaimError, Proof
from ..store import results
from . import sphinxext
from .sphinxext import Cell

LOGGER = logging.getLogger(__name__)


@dataclass
class Claim:
    """One claim as the ledger lists it."""

    id: str
    docname: str
    line: int
    text: str
    proofs: list[str] = field(default_factory=list)  # sample@name
    cites: str = ""


def _claims(env: BuildEnvironment) -> dict[str, Claim]:
    if not hasattr(env, "kd_claims"):
        env.kd_claims = {}  # type: ignore[attr-defined]
    found: dict[str, Claim] = env.kd_claims  # type: ignore[attr-defined]
    return found


def _samples(app: Sphinx) -> dict[str, Any]:
    cached = getattr(app, "_kd_samples", None)
    if cached is None:
        cached = {s.name: s for s in extract.collect(Path(app.srcdir), Path(app.confdir))}
        app._kd_samples = cached  # type: ignore[attr-defined]
    return cached


@dataclass
class ProofVerdicts:
    """Where a proving expectation held (its sample passed with the line applied), failed, or did not apply."""

    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def add(self, newest: results.Newest, proof: Proof) -> None:
        for (sample, target), record in sorted(newest.records.items()):
            if sample != proof.sample:
                continue
            if record.verdict == "pass" and proof.name in record.named:
                self.passed.append(target)
            elif record.verdict in ("fail", "error"):
                self.failed.append(target)


def verdict_of(newest: results.Newest, proof: Proof, target: str) -> str:
    """``pass``, ``FAIL`` or ``not claimed`` for one proving expectation on one target."""
    record = newest.records.get((proof.sample, target))
    if record is None:
        return "no result"
    if record.verdict in ("fail", "error"):
        return "FAIL"
    if record.verdict == "pass" and proof.name in record.named:
        return "pass"
    return "not claimed"


class ClaimDirective(SphinxDirective):
    """``claim ID``: sentences bound to the expectations that prove them, or to the source that states them."""

    required_arguments = 1
    has_content = True
    option_spec: ClassVar[dict[str, Any]] = {"proves": directives.unchanged, "cites": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        claim_id = self.arguments[0]
        where = f"{self.env.doc2path(self.env.docname)}:{self.lineno}"
        if not self.options.get("proves") and not self.options.get("cites"):
            raise self.error(f"{where}: claim {claim_id}: give :proves: sample@name, or :cites: its source")
        try:
            proofs = source.proofs(self.options.get("proves", ""), _samples(self.env.app))
        except ClaimError as exc:
            raise self.error(f"{where}: claim {claim_id}: {exc}") from exc
        known = _claims(self.env)
        if claim_id in known and known[claim_id].docname != self.env.docname:
            raise self.error(f"{where}: claim {claim_id} is already defined in {known[claim_id].docname}")
        container = nodes.container(classes=["kd-claim"], ids=[f"claim-{claim_id}"])
        self.state.nested_parse(self.content, self.content_offset, container)
        known[claim_id] = Claim(
            claim_id, self.env.docname, self.lineno, container.astext(), [str(p) for p in proofs],
            self.options.get("cites", ""),
        )  # fmt: skip
        container += self._status(proofs)
        return [container]

    def _status(self, proofs: list[Proof]) -> nodes.paragraph:
        newest = sphinxext.newest_results(self.env.app)
        para = nodes.paragraph(classes=["kd-claim-status"])
        for proof in proofs:
            sphinxext.note_runs(self.env, newest.runs_of(k for k in newest.records if k[0] == proof.sample))
            verdicts = ProofVerdicts()
            verdicts.add(newest, proof)
            text = f"Shown by {proof}: "
            if verdicts.failed:
                para["classes"].append("kd-claim-failing")
                text += f"FAILS on {', '.join(verdicts.failed)}; "
            text += f"passes on {len(verdicts.passed)} target(s)" if verdicts.passed else "not verified yet"
            para += nodes.Text(sphinxext.shown(text) + ". ")
        if self.options.get("cites"):
            para += nodes.Text(f"Source: {self.options['cites']}.")
        return para


class ledger(nodes.General, nodes.Element):  # docutils names its nodes in lower case
    """Where the ledger goes; filled once every page has been read."""


class ClaimsDirective(SphinxDirective):
    """``kprobe-claims``: the ledger of every claim of the site."""

    def run(self) -> list[nodes.Node]:
        sphinxext.note_runs(self.env, sphinxext.newest_results(self.env.app).record_run.values())
        return [ledger()]


def _ledger_table(app: Sphinx, docname: str) -> nodes.Node:
    newest = sphinxext.newest_results(app)
    targets = sorted(newest.targets)
    rows: list[list[Cell]] = []
    for claim in sorted(_claims(app.env).values(), key=lambda c: (c.docname, c.line)):
        uri = app.builder.get_relative_uri(docname, claim.docname) + f"#claim-{claim.id}"
        link = nodes.reference("", claim.id, refuri=uri)
        text = claim.text if len(claim.text) <= 220 else claim.text[:217] + "..."
        proofs = [source.Proof(*p.split("@")) for p in claim.proofs]
        how = ", ".join(claim.proofs) if claim.proofs else ""
        how += ("; " if how else "") + (f"cited: {claim.cites}" if claim.cites else "")
        cells: list[Cell] = [link, text, how]
        for target in targets:
            verdicts = [verdict_of(newest, p, target) for p in proofs]
            cell = "cited" if not verdicts else next((v for v in ("FAIL", "pass") if v in verdicts), verdicts[0])
            cells.append(nodes.strong("", cell) if cell == "FAIL" else cell)
        rows.append(cells)
    proven = sum(bool(c.proofs) for c in _claims(app.env).values())
    summary = nodes.paragraph("", f"{len(rows)} claims: {proven} proven by runs, {len(rows) - proven} cited only.")
    header: list[Cell] = ["claim", "sentence", "proven by / source", *(nodes.literal("", t) for t in targets)]
    return nodes.container("", summary, sphinxext.table_of(header, rows))


def _fill_ledger(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    for node in doctree.findall(ledger):
        node.replace_self(_ledger_table(app, docname))


def _purge(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    known = _claims(env)
    for claim_id in [i for i, c in known.items() if c.docname == docname]:
        del known[claim_id]


def _merge(app: Sphinx, env: BuildEnvironment, docnames: set[str], other: BuildEnvironment) -> None:
    _claims(env).update(_claims(other))


def _check_unbound(app: Sphinx) -> None:
    """Every statement of a page outside a claim: a warning (an error under -W) at its page and line."""
    root = Path(app.confdir)
    for found in source.unbound_in(Path(app.srcdir), root):
        docname = str(Path(found.path).relative_to(Path(app.srcdir).relative_to(root)).with_suffix(""))
        LOGGER.warning(
            "%s stated outside a claim: %s", found.kind, found.text.strip()[:100],
            location=(docname, found.line), type="kprobe-docs", subtype="claim",
        )  # fmt: skip


def setup(app: Sphinx) -> None:
    app.add_directive("claim", ClaimDirective)
    app.add_directive("kprobe-claims", ClaimsDirective)
    app.add_node(ledger)
    app.connect("builder-inited", _check_unbound)
    app.connect("doctree-resolved", _fill_ledger)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
