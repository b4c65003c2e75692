"""Claims: what the pages state about kernels, bound to what proves it.

A claim is a ``claim`` directive around the sentences that state it::

    :::{claim} default-maxactive
    :proves: kretprobe_maxactive_default@chosen
    :cites: kernel/kprobes.c (6.12), register_kretprobe()
    A kretprobe registered with maxactive 0 gets max(10, 2 x possible CPUs).
    :::

``proves`` names expectations of samples as ``sample@name`` (the ``@name``
of an expect, reject or listed line, or ``@build`` for a sample whose page
says it cannot build), several separated by spaces: the
sentence is proven on each target where those lines apply and the samples
pass.  ``cites`` gives the kernel source that states it, a file with the
version it was read in, or a commit: for what no run can show.  A claim has
one or both.

``unbound()`` is the check that keeps the pages honest: it finds every line
of prose that states an error code, a probe flag, a kernel-version boundary
or a default value outside a claim.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import expectations
from .sample import Sample

ERRNO_RE = re.compile(
    r"(?<![\w/])-?E(?:INVAL|NOENT|ILSEQ|2BIG|BUSY|EXIST|NOSYS|OPNOTSUPP|NOMEM|PERM|FAULT|RANGE|NODEV|AGAIN"
    r"|ACCES|NOEXEC|ADDRNOTAVAIL|NOSPC|KEYREJECTED|NOTSUPP|SRCH)\b"
)
FLAG_RE = re.compile(r"\[(?:GONE|OPTIMIZED|DISABLED|FTRACE)\]")
VERSION = r"(?:Linux\s+|kernel\s+|v)?[2-7]\.\d{1,2}\b"
BOUNDARY_RE = re.compile(
    rf"\b(?:[Ss]ince|[Uu]ntil|[Bb]efore|[Aa]fter|[Ff]rom|[Ii]n|[Aa]s of|[Tt]hrough|[Uu]p to|[Bb]etween)\s+{VERSION}"
    rf"|\b[2-7]\.\d{{1,2}}\+|\b[2-7]\.\d{{1,2}}\s+and\s+(?:later|newer|earlier|older|above)\b"
)
DEFAULT_RE = re.compile(r"\bdefaults?\b(?:[^.:;]{0,40}?)(?:\b\d+\b|`[^`]+`)|\b\d+\b[^.:;]{0,12}\bby default\b")
STATEMENTS = {"error code": ERRNO_RE, "probe flag": FLAG_RE, "kernel version": BOUNDARY_RE, "default": DEFAULT_RE}
BUILD = "build"  # the proof name of a sample's expected build failure: sample@build
PROOF_RE = re.compile(r"^([a-z][a-z0-9_]*)@([a-z][a-z0-9_-]*)$")
FENCE_RE = re.compile(r"^(\s*)(`{3,}|~{3,}|:{3,})(.*)$")


class ClaimError(ValueError):
    """A malformed claim, located in its page."""


@dataclass(frozen=True)
class Proof:
    sample: str
    name: str

    def __str__(self) -> str:
        return f"{self.sample}@{self.name}"


def proofs(value: str, samples: dict[str, Sample]) -> list[Proof]:
    """The ``proves`` option: each ``sample@name`` checked against the samples the pages define."""
    found = []
    for word in value.replace(",", " ").split():
        match = PROOF_RE.match(word)
        if match is None:
            raise ClaimError(f"proves: {word!r} is not sample@name")
        sample = samples.get(match[1])
        if sample is None:
            raise ClaimError(f"proves: no sample named {match[1]!r}")
        named = [n for key in ("expect", "reject", "listed") for n in expectations.names(getattr(sample, key))]
        if sample.build_fails:
            named.append(BUILD)  # the build failing as the page says
        if match[2] not in named:
            known = ", ".join(f"@{n}" for n in named) or "none"
            raise ClaimError(f"proves: sample {match[1]} has no line named @{match[2]} (its names: {known})")
        found.append(Proof(match[1], match[2]))
    return found


@dataclass(frozen=True)
class Unbound:
    path: str
    line: int
    kind: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: a {self.kind} stated outside a claim: {self.text.strip()[:120]}"


@dataclass
class _Fence:
    marker: str  # the run of backticks, tildes or colons that opened it
    prose: bool  # what it holds is prose (a tab, a note), not code or options
    claim: bool  # it is a claim: its lines are bound


def _opens(marker: str, info: str) -> _Fence:
    directive = info.strip()
    is_claim = directive.startswith("{claim}")
    prose = marker.startswith(":") and not directive.startswith("{kprobe-")
    return _Fence(marker, prose or is_claim, is_claim)


def _closes(fence: _Fence, marker: str, rest: str) -> bool:
    return marker[0] == fence.marker[0] and len(marker) >= len(fence.marker) and not rest.strip()


def _prose(text: str) -> Iterator[tuple[int, str, bool]]:
    """(line number, line, inside a claim) for every line of prose of a MyST page."""
    stack: list[_Fence] = []
    comment = False
    for number, line in enumerate(text.splitlines(), start=1):
        if comment or line.lstrip().startswith("<!--"):
            comment = "-->" not in line
            continue
        fence = FENCE_RE.match(line)
        if fence and stack and _closes(stack[-1], fence[2], fence[3]):
            stack.pop()
            continue
        if fence and (not stack or stack[-1].prose):
            stack.append(_opens(fence[2], fence[3]))
            continue
        if stack and not stack[-1].prose:
            continue
        if line.startswith("#") or re.match(r"^\s*:[\w-]+:", line):  # headings, directive options
            continue
        yield number, line, any(f.claim for f in stack)


def unbound(text: str, path: str) -> list[Unbound]:
    """Lines of a page that state an error code, a probe flag, a version boundary or a default outside a claim."""
    found = []
    for number, line, bound in _prose(text):
        if bound:
            continue
        for kind, pattern in STATEMENTS.items():
            if pattern.search(line):
                found.append(Unbound(path, number, kind, line))
                break
    return found


def unbound_in(docs: Path, root: Path) -> list[Unbound]:
    """Every unbound statement of the pages under ``docs``."""
    found = []
    for page in sorted(docs.rglob("*.md")):
        found += unbound(page.read_text(), page.relative_to(root).as_posix())
    return found
