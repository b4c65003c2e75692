"""What a sample is: its code and what a run of it must show.

A sample is written once, as a ``kprobe-sample`` directive inside a MyST page.
Its options are validated here, by the one parser that the extractor and the
Sphinx extension share, so a malformed directive fails the same way in both.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import arches, expectations

DIRECTIVE = "kprobe-sample"
KINDS = {"kmod": "c", "bcc": "py", "tracefs": "sh", "bpftrace": "bt", "perf": "sh"}
# Options a kind has no use for.  A tracefs or perf script is run as a reader runs it, its own trigger included;
# a bpftrace program runs the trigger itself (``bpftrace -c``) and is gone before the kprobes list could be read.
# Only the initramfs boot provides kernel modules to modprobe.
UNUSED = {
    "tracefs": ("params", "trigger", "listed", "build", "build-error"),
    "perf": ("params", "trigger", "listed", "build", "build-error", "kernel-modules"),
    "bpftrace": ("params", "listed", "build", "build-error", "kernel-modules"),
    "bcc": ("kernel-modules",),
}
ARCHES = tuple(arches.ARCHES)
NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,55}")
# Names the pipeline uses beside the samples': /kd/plan and the bcc runner's /tmp/kd/run in the guests,
# build/<target>/api/ for the API probes, whose own names start with api_.
RESERVED = {"plan": "the guest's run order, /kd/plan", "run": "the bcc guest's handshake directory",
            "api": "the API probes' build directory"}  # fmt: skip
PARAM_RE = re.compile(r"[a-z_][a-z0-9_]*=[^\s'\"\\]+")
MODULE_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,55}")
RANGE_RE = re.compile(r"(>=|<)(\d+)\.(\d+)")
DEFAULT_TIMEOUT = 60
SPEC_FILE = "sample.json"


class SampleError(ValueError):
    """A malformed sample directive, located in its page."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")


@dataclass(frozen=True)
class KernelRange:
    """Kernel versions a sample claims to work on: ``>=5.10,<7.0`` or ``all``."""

    text: str

    def bounds(self) -> list[tuple[str, tuple[int, int]]]:
        if self.text == "all":
            return []
        out = []
        for part in self.text.split(","):
            match = RANGE_RE.fullmatch(part.strip())
            if match is None:
                raise ValueError(f"bad kernel range {self.text!r}: want e.g. '>=5.10,<7.0' or 'all'")
            out.append((match[1], (int(match[2]), int(match[3]))))
        return out

    def contains(self, version: tuple[int, int]) -> bool:
        for op, bound in self.bounds():
            if op == ">=" and version < bound:
                return False
            if op == "<" and version >= bound:
                return False
        return True


@dataclass(frozen=True)
class Sample:
    """One sample: source code plus the contract its run is checked against."""

    name: str
    kind: str
    code: str
    kernels: KernelRange = KernelRange("all")
    arches: tuple[str, ...] = ARCHES
    params: tuple[str, ...] = ()
    trigger: str = "true"
    expect: tuple[str, ...] = ()
    reject: tuple[str, ...] = ()
    listed: tuple[str, ...] = ()
    kernel_modules: tuple[str, ...] = ()  # modules of the target's kernel the sample loads itself (modprobe)
    build_fails: bool = False
    build_error: str = ""
    timeout: int = DEFAULT_TIMEOUT
    page: str = ""
    line: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return f"{self.name}.{KINDS[self.kind]}"

    def claims(self, arch: str, version: tuple[int, int]) -> bool:
        return arch in self.arches and self.kernels.contains(version)

    def spec(self) -> dict[str, Any]:
        """The run contract as written to ``samples/<name>/sample.json``."""
        data = asdict(self)
        for key in ("code", "extra", "line"):
            data.pop(key)
        if not self.kernel_modules:  # absent rather than empty: the samples without it keep their source hash
            data.pop("kernel_modules")
        data["kernels"] = self.kernels.text
        return data

    def source_hash(self) -> str:
        blob = json.dumps(self.spec(), sort_keys=True) + "\0" + self.code
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def from_spec(cls, spec: dict[str, Any], code: str) -> Sample:
        fields = dict(spec)
        fields["kernels"] = KernelRange(fields["kernels"])
        for key in ("arches", "params", "expect", "reject", "listed", "kernel_modules"):
            fields[key] = tuple(fields.get(key, ()))
        return cls(code=code, **fields)


OPTION_KEYS = {
    "kind",
    "kernels",
    "arches",
    "params",
    "trigger",
    "expect",
    "reject",
    "listed",
    "kernel-modules",
    "build",
    "build-error",
    "timeout",
    "caption",
}


def _lines(value: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in value.splitlines() if line.strip())


def _check_patterns(patterns: tuple[str, ...], key: str) -> None:
    for pattern in patterns:
        try:
            expectations.parse(pattern)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from exc


def _check_names(sample: Sample) -> None:
    """A name binds a claim to one line: no two lines of a sample share one."""
    seen: set[str] = set()
    for key in ("expect", "reject", "listed"):
        for name in expectations.names(getattr(sample, key)):
            if name in seen:
                raise ValueError(f"{key}: the name @{name} is given to two lines; a claim needs one")
            seen.add(name)


def _arches(value: str) -> tuple[str, ...]:
    chosen = tuple(value.split())
    unknown = [a for a in chosen if a not in ARCHES]
    if unknown or not chosen:
        raise ValueError(f"arches: want some of {' '.join(ARCHES)}, got {value!r}")
    return chosen


def _params(value: str) -> tuple[str, ...]:
    params = tuple(value.split())
    bad = [p for p in params if not PARAM_RE.fullmatch(p)]
    if bad:
        raise ValueError(f"params: want name=value words without quotes, got {bad[0]!r}")
    return params


def _kernel_modules(value: str) -> tuple[str, ...]:
    names = tuple(value.split())
    bad = [n for n in names if not MODULE_RE.fullmatch(n)]
    if bad or not names:
        raise ValueError(f"kernel-modules: want module names such as 'dummy', got {value!r}")
    return names


def _timeout(value: str) -> int:
    if not value.isdigit() or not 5 <= int(value) <= 600:
        raise ValueError(f"timeout: want seconds between 5 and 600, got {value!r}")
    return int(value)


def _build(value: str) -> bool:
    if value not in ("ok", "fails"):
        raise ValueError(f"build: want 'ok' or 'fails', got {value!r}")
    return value == "fails"


def _fields(options: dict[str, str]) -> dict[str, Any]:
    kind = options.get("kind", "")
    if kind not in KINDS:
        raise ValueError(f"kind: want one of {', '.join(KINDS)}, got {kind!r}")
    unused = [key for key in UNUSED.get(kind, ()) if key in options]
    if unused:
        raise ValueError(f"{unused[0]}: a {kind} sample takes no {unused[0]!r} (see 'Writing a verified sample')")
    fields: dict[str, Any] = {"kind": kind}
    if "kernels" in options:
        fields["kernels"] = KernelRange(options["kernels"].strip())
        fields["kernels"].bounds()
    converters = {"arches": _arches, "params": _params, "timeout": _timeout, "build": _build,
                  "kernel-modules": _kernel_modules}  # fmt: skip
    renamed = {"build": "build_fails", "kernel-modules": "kernel_modules"}
    for key, convert in converters.items():
        if key in options:
            fields[renamed.get(key, key)] = convert(options[key])
    if "trigger" in options:
        fields["trigger"] = options["trigger"].strip()
    for key in ("expect", "reject", "listed"):
        fields[key] = _lines(options.get(key, ""))
        _check_patterns(fields[key], key)
    if "build-error" in options:
        fields["build_error"] = options["build-error"].strip()
        _check_patterns((fields["build_error"],), "build-error")
    return fields


def _check_contract(sample: Sample) -> None:
    if sample.build_fails and not sample.build_error:
        raise ValueError("build: fails needs a build-error pattern saying why it fails")
    if sample.build_error and not sample.build_fails:
        raise ValueError("build-error is only meaningful with build: fails")
    if not sample.build_fails and not sample.expect:
        raise ValueError("expect: a sample that builds must name at least one log line it prints")
    _check_names(sample)


def make_sample(name: str, options: dict[str, Any], code: str, path: str, line: int) -> Sample:
    """Validate one directive; raise SampleError naming ``path:line`` if malformed."""
    try:
        if not NAME_RE.fullmatch(name):
            raise ValueError(f"sample name {name!r}: want a C identifier in lower case")
        if name in RESERVED or name.startswith("api_"):
            used = RESERVED.get(name, "the API probes' names")
            raise ValueError(f"sample name {name!r} is reserved: kprobe-docs uses it for {used}; pick another")
        unknown = sorted(set(options) - OPTION_KEYS)
        if unknown:
            raise ValueError(f"unknown option {unknown[0]!r}; known: {', '.join(sorted(OPTION_KEYS))}")
        not_text = [k for k, v in options.items() if not isinstance(v, str)]
        if not_text:
            raise ValueError(f"option {not_text[0]!r} must be text: quote it")
        if not code.strip():
            raise ValueError("the directive holds no code")
        extra = {"caption": options["caption"]} if "caption" in options else {}
        sample = Sample(name=name, code=code, page=path, line=line, extra=extra, **_fields(options))
        _check_contract(sample)
    except ValueError as exc:
        raise SampleError(path, line, f"{DIRECTIVE} {name}: {exc}") from exc
    return sample


def load_sample(directory: Path) -> Sample:
    """Read an extracted sample back from ``samples/<name>/``."""
    spec = json.loads((directory / SPEC_FILE).read_text())
    filename = f"{spec['name']}.{KINDS[spec['kind']]}"
    return Sample.from_spec(spec, (directory / filename).read_text())
