"""Expectations: the lines of a sample's ``expect``, ``reject`` and ``listed`` options.

A line is a regular expression, optionally preceded by a name and by the
conditions under which it applies::

    @landing when(amd64 CONFIG_X86_KERNEL_IBT=y) planted kprobe at kernel_clone\\+0x4$
    @landing when(arm64) planted kprobe at kernel_clone\\+0x0$

``@name`` lets a page bind a sentence to the expectation (a *claim*): the
sentence is proven on every target where the named line applies and the
sample passes.  ``when(...)`` holds conditions, all of which must hold:
architectures (any one of those given), kernel version bounds (``>=6.12``,
``<7.0``) and kernel configuration (``CONFIG_X=y``, ``CONFIG_X!=y``; an
option the config does not set counts as ``n``).  A line without
``when(...)`` applies everywhere the sample is claimed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .arches import ARCHES

LINE_RE = re.compile(r"^(?:@(?P<name>[a-z][a-z0-9_-]*)\s+)?(?:when\((?P<when>[^)]*)\)\s+)?(?P<pattern>.+)$")
VERSION_RE = re.compile(r"^(>=|<)(\d+)\.(\d+)$")
CONFIG_RE = re.compile(r"^(CONFIG_[A-Z0-9_]+)(!?=)(\S+)$")


@dataclass(frozen=True)
class Context:
    """What a target is, as far as conditions ask: its arch, kernel version and configuration."""

    arch: str
    version: tuple[int, int]
    config: Mapping[str, str] = field(default_factory=dict)


def _holds(token: str, context: Context) -> bool:
    version = VERSION_RE.match(token)
    if version:
        bound = (int(version[2]), int(version[3]))
        return context.version >= bound if version[1] == ">=" else context.version < bound
    config = CONFIG_RE.match(token)
    if config:
        value = context.config.get(config[1], "n")
        return (value == config[3]) == (config[2] == "=")
    raise ValueError(f"unknown condition {token!r}")


@dataclass(frozen=True)
class Expectation:
    pattern: str
    name: str = ""
    when: tuple[str, ...] = ()

    def applies(self, context: Context) -> bool:
        arches = [t for t in self.when if t in ARCHES]
        if arches and context.arch not in arches:
            return False
        return all(_holds(t, context) for t in self.when if t not in ARCHES)


def parse(line: str) -> Expectation:
    """One option line; ValueError says what is wrong with it."""
    found = LINE_RE.match(line.strip())
    if found is None:
        raise ValueError(f"empty expectation in {line!r}")
    when = tuple((found["when"] or "").split())
    for token in when:
        if token not in ARCHES and not VERSION_RE.match(token) and not CONFIG_RE.match(token):
            raise ValueError(
                f"when({found['when']}): {token!r} is neither an arch ({' '.join(ARCHES)}), "
                "a version bound (>=6.12, <7.0) nor a config test (CONFIG_X=y, CONFIG_X!=y)"
            )
    if found["when"] is not None and not when:
        raise ValueError("when(): give at least one condition, or leave when() out")
    pattern = found["pattern"]
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad regular expression {pattern!r}: {exc}") from exc
    return Expectation(pattern, found["name"] or "", when)


def applicable(lines: tuple[str, ...], context: Context) -> list[Expectation]:
    """The expectations of ``lines`` that apply on a target."""
    return [e for e in map(parse, lines) if e.applies(context)]


def names(lines: tuple[str, ...]) -> list[str]:
    return [e.name for e in map(parse, lines) if e.name]
