"""Targets: the catalog of (Debian release, arch, kernel flavour) and the mirror.

The archive is never named here: it is read from the system's own apt sources
(one-line ``.list`` files and deb822 ``.sources`` files).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .arches import ARCHES, apt_suffix

APT_SOURCES = Path("/etc/apt/sources.list")
APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")


class TargetError(ValueError):
    """An unknown target or an unusable catalog or apt configuration."""


@dataclass(frozen=True)
class Target:
    name: str
    release: str
    suites: tuple[str, ...]
    arch: str
    flavour: str
    pin: str = ""  # a suite the kernel must come from, e.g. trixie-backports

    @property
    def image_package(self) -> str:
        return f"linux-image-{self.flavour}{apt_suffix(self.arch)}"

    @property
    def env_key(self) -> tuple[str, str]:
        """Targets with the same key share one build chroot."""
        return self.release, self.pin


@dataclass(frozen=True)
class Catalog:
    targets: dict[str, Target]
    default: tuple[str, ...]

    def siblings(self, target: Target) -> list[Target]:
        """The catalog's targets that share ``target``'s build chroot."""
        return [t for t in self.targets.values() if t.env_key == target.env_key]

    def select(self, names: list[str]) -> list[Target]:
        """Targets for names, where ``default`` and ``all`` are groups."""
        chosen: list[str] = []
        for name in names or ["default"]:
            group = {"default": list(self.default), "all": list(self.targets)}.get(name, [name])
            chosen += [n for n in group if n not in chosen]
        unknown = [n for n in chosen if n not in self.targets]
        if unknown:
            raise TargetError(f"unknown target {unknown[0]!r}; known: {', '.join(self.targets)}, default, all")
        return [self.targets[n] for n in chosen]


def _target(name: str, data: dict[str, Any]) -> Target:
    try:
        return Target(
            name=name,
            release=str(data["release"]),
            suites=tuple(str(s) for s in data["suites"]),
            arch=str(data["arch"]),
            flavour=str(data["flavour"]),
            pin=str(data.get("pin", "")),
        )
    except KeyError as exc:
        raise TargetError(f"target {name}: missing key {exc}") from exc


def _check(target: Target) -> Target:
    if target.arch not in ARCHES:
        raise TargetError(f"target {target.name}: arch {target.arch!r} is not one of {', '.join(ARCHES)}")
    if target.pin and target.pin not in target.suites:
        raise TargetError(f"target {target.name}: pin {target.pin!r} is not one of its suites")
    return target


def load_catalog(text: str | None = None) -> Catalog:
    if text is None:
        text = resources.files("kprobe_docs.sources").joinpath("targets.toml").read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"the targets catalog is not valid TOML: {exc}") from exc
    targets = {name: _check(_target(name, entry)) for name, entry in data.get("targets", {}).items()}
    default = tuple(data.get("default", []))
    missing = [n for n in default if n not in targets]
    if missing:
        raise TargetError(f"default target {missing[0]!r} is not in the catalog")
    return Catalog(targets, default)


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]


def parse_one_line(text: str) -> list[AptSource]:
    """``deb [opts] URI SUITE COMPONENT...`` lines."""
    out = []
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            out.append(AptSource(words[1].rstrip("/"), (words[2],)))
    return out


def parse_deb822(text: str) -> list[AptSource]:
    """Stanzas with ``Types: deb``, ``URIs:`` and ``Suites:`` (``Enabled: no`` skipped)."""
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
            suites = tuple(fields.get("suites", "").split())
            out += [AptSource(uri.rstrip("/"), suites) for uri in fields.get("uris", "").split()]
    return out


def system_sources() -> list[AptSource]:
    sources = parse_one_line(APT_SOURCES.read_text()) if APT_SOURCES.is_file() else []
    if APT_SOURCES_DIR.is_dir():
        for path in sorted(APT_SOURCES_DIR.iterdir()):
            if path.suffix == ".list":
                sources += parse_one_line(path.read_text())
            elif path.suffix == ".sources":
                sources += parse_deb822(path.read_text())
    return sources


@dataclass(frozen=True)
class Mirror:
    """The Debian archive and security archive the system's apt uses."""

    archive: str
    security: str

    def uri_for(self, suite: str) -> str:
        return self.security if suite.endswith("-security") else self.archive

    def apt_lines(self, suites: tuple[str, ...]) -> list[str]:
        return [f"deb {self.uri_for(s)} {s} main" for s in suites]


def find_mirror(sources: list[AptSource]) -> Mirror:
    security = [s.uri for s in sources if any(x.endswith("-security") for x in s.suites)]
    archive = [
        s.uri for s in sources if s.uri not in security and any(x.split("-")[0] in DEBIAN_CODENAMES for x in s.suites)
    ]
    if not archive:
        raise TargetError(
            "no Debian archive found in the system's apt sources "
            f"({APT_SOURCES}, {APT_SOURCES_DIR}/*.list, *.sources): add the Debian mirror you use"
        )
    if not security:
        raise TargetError("no Debian security archive (a '<codename>-security' suite) in the system's apt sources")
    return Mirror(archive[0], security[0])


DEBIAN_CODENAMES = {"bullseye", "bookworm", "trixie", "forky", "duke", "sid", "unstable", "stable", "testing"}
