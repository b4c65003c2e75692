"""``kprobe-arch-features``: per architecture, each kprobes feature as the newest runs found it.

A column per Debian architecture that has results, headed by the kernel
versions proven there; a row per feature.  Every cell is read from the
results: a sample's verdict, which of its named expectations held (the
line the page says it prints), a kernel config value the run recorded, or
an API compile probe.  Values that differ between the kernels of an
architecture are listed with the kernels of each.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx

from ..store import results
from ..store.results import Record, TargetFacts
from .sphinxext import _ResultsTable, kernel_of, table_of

Probe = Callable[[Record | None, TargetFacts], str]


def _verdict(record: Record | None, facts: TargetFacts) -> str:
    if record is None or record.verdict == "not-claimed":
        return "not claimed"
    return "works" if record.verdict == "pass" else f"fails ({record.verdict})"


def _named(choices: dict[str, str]) -> Probe:
    """The value of the first of ``choices`` (named expectation -> value) that held in a passing run."""

    def probe(record: Record | None, facts: TargetFacts) -> str:
        if record is None or record.verdict != "pass":
            return _verdict(record, facts)
        return next((value for name, value in choices.items() if name in record.named), "not shown by the run")

    return probe


def _landing(record: Record | None, facts: TargetFacts) -> str:
    """Where a probe asked for at offset 0 of kernel_clone was planted, as kprobe_example printed it."""
    if record is None or record.verdict != "pass":
        return _verdict(record, facts)
    line = record.named.get("landing_ibt") or record.named.get("landing_entry", "")
    found = re.search(r"planted kprobe at kernel_clone(\+0x[0-9a-f]+)/", line)
    if found is None:
        return "not shown by the run"
    return f"{found[1]} (past the ENDBR64 of IBT)" if "landing_ibt" in record.named else found[1]


def _return_path(record: Record | None, facts: TargetFacts) -> str:
    value = facts.get("config", {}).get("CONFIG_KRETPROBE_ON_RETHOOK", UNKNOWN)
    return {"y": "rethook", "n": "the architecture's trampoline"}.get(value, UNKNOWN)


def _api(name: str) -> Probe:
    def probe(record: Record | None, facts: TargetFacts) -> str:
        found = (facts.get("api") or {}).get(name)
        if found is None:
            return UNKNOWN
        return "a module can call it" if found["available"] else "a module cannot build with it"

    return probe


@dataclass(frozen=True)
class Feature:
    name: str
    sample: str  # the sample whose record the probe reads ("" for facts only)
    probe: Probe


ENTRY_DATA = _named({"entry_data": "works: the return handler read the entry time"})
OPTIMIZED = _named({"optimized": "[OPTIMIZED] in the kprobes list", "not_optimized": "not optimized"})
ON_ENTRY = _named({"listed_ftrace": "through ftrace: [FTRACE]", "listed_plain": "a breakpoint"})
FEATURES = (
    Feature("kprobe (pre- and post-handler)", "kprobe_example", _verdict),
    Feature("kretprobe", "kretprobe_example", _verdict),
    Feature("entry handler and per-instance data", "kretprobe_example", ENTRY_DATA),
    Feature("optimized probe (a jump, not a breakpoint)", "kprobe_optimized", OPTIMIZED),
    Feature("probe on a function entry", "kprobe_example", ON_ENTRY),
    Feature("offset 0 of kernel_clone is planted at", "kprobe_example", _landing),
    Feature("return probes return through", "", _return_path),
    Feature("regs_get_kernel_argument()", "", _api("regs_get_kernel_argument")),
)
UNKNOWN = "?"  # a run that did not record the fact (a test machine runs no API probes)


def _cell(values: dict[str, list[str]]) -> str:
    """One value, or each value with the kernels that gave it; runs that did not record it count only alone."""
    if len(values) > 1:
        values = {value: kernels for value, kernels in values.items() if value != UNKNOWN}
    if len(values) == 1:
        return next(iter(values))
    return "; ".join(f"{value} ({', '.join(kernels)})" for value, kernels in values.items())


def _kernels(newest: results.Newest, targets: list[str]) -> str:
    versions = sorted({kernel_of(newest.targets[t]) for t in targets})
    return ", ".join(f"{major}.{minor}" for major, minor in versions)


class ArchFeaturesDirective(_ResultsTable):
    """The features table: a row per feature, a column per architecture with results."""

    def nodes_for(self, newest: results.Newest) -> list[nodes.Node]:
        arches: dict[str, list[str]] = {}
        for target in sorted(newest.targets, key=lambda t: kernel_of(newest.targets[t])):
            arches.setdefault(newest.targets[target].get("arch", "?"), []).append(target)
        header = ["feature", *(f"{arch} (kernels {_kernels(newest, ts)})" for arch, ts in sorted(arches.items()))]
        rows = [[feature.name, *(self._cell(newest, feature, ts) for _, ts in sorted(arches.items()))]
                for feature in FEATURES]  # fmt: skip
        return [table_of(header, rows, classes=["kd-arch-features"])]

    @staticmethod
    def _cell(newest: results.Newest, feature: Feature, targets: list[str]) -> str:
        values: dict[str, list[str]] = {}
        for target in targets:
            facts = newest.targets[target]
            record = newest.records.get((feature.sample, target)) if feature.sample else None
            major, minor = kernel_of(facts)
            kernel = f"{major}.{minor}"
            kernels = values.setdefault(feature.probe(record, facts), [])
            if kernel not in kernels:
                kernels.append(kernel)
        return _cell(values)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("kprobe-arch-features", ArchFeaturesDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
