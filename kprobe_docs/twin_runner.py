"""Run the bcc twins of a plan in one process, inside a bcc guest.

Runs with the guest release's python3 (3.9 on bullseye) and bcc, not in the
project's environment.  Each twin is a sample file defining ``NAME``,
``BPF_TEXT`` and ``Twin(bpf, say)`` with ``attach()``, ``poll(ms)`` and
``finish()``.  Loading bcc and compiling costs most of a twin's time under
TCG, so all twins' BPF texts are compiled as one program (their identifiers
carry per-twin prefixes); if that fails, each twin is compiled alone, so a
broken twin fails by itself.

Handshake with the agent, in ``--dir``: ``compiled`` once compiling is over;
per twin ``ready.NAME`` (``0`` attached, else ``1``), then the agent runs the
trigger and creates ``stop.NAME``; the twin detaches, reports to ``out.NAME``
and ``done.NAME`` holds ``0`` (or ``1`` if it failed).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO, TextIO

POLL_MS = 100
# clang's diagnostics name the line of bcc's main program: /virtual/main.c:<line>:<column>: error: ...
ERROR_RE = re.compile(r"/virtual/main\.c:(\d+):\d+: (?:fatal )?error: (.*)")


def load_twin(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compile_all(twins: dict[str, ModuleType], errors: dict[str, str]) -> dict[str, Any]:
    """One BPF object shared by the twins that compile together; the others' errors go to ``errors``.

    A twin that breaks the shared program is found from the line numbers of
    clang's errors and left out, which costs one more compile instead of one
    per twin; when the errors name no line, each twin is compiled alone.
    """
    pending = dict(twins)
    while pending:
        text, owners = _concatenate(pending)
        with tempfile.TemporaryFile() as diagnostics:
            try:
                shared = _compile(text, diagnostics)
                return dict.fromkeys(pending, shared)
            except Exception:
                failure = traceback.format_exc() + _read(diagnostics)
        print(failure, flush=True)
        blamed = [(_owner(int(m[1]), owners), int(m[1]), m[2]) for m in ERROR_RE.finditer(failure)]
        if not blamed:  # the errors name no line
            return _each_alone(pending, errors)
        for name, line, message in reversed(blamed):  # the first error of each twin is kept
            errors[name] = f"{failure}BPF compile error: line {line - owners[name] + 1}: {message}\n"
        for name in {name for name, _, _ in blamed}:
            del pending[name]
    return {}


def _concatenate(twins: dict[str, ModuleType]) -> tuple[str, dict[str, int]]:
    """The twins' texts as one program, and the line (1-based) where each begins."""
    owners, line = {}, 1
    for name, twin in twins.items():
        owners[name] = line
        line += twin.BPF_TEXT.count("\n") + 1
    return "\n".join(twin.BPF_TEXT for twin in twins.values()), owners


def _owner(line: int, owners: dict[str, int]) -> str:
    """The twin whose text holds ``line`` of the shared program."""
    return [name for name, first in owners.items() if first <= line][-1]


def _each_alone(twins: dict[str, ModuleType], errors: dict[str, str]) -> dict[str, Any]:
    print("# compiling each twin alone", flush=True)
    objects = {}
    for name, twin in twins.items():
        with tempfile.TemporaryFile() as diagnostics:
            try:
                objects[name] = _compile(twin.BPF_TEXT, diagnostics)
            except Exception:
                errors[name] = f"{traceback.format_exc()}{_read(diagnostics)}BPF compile error: see above\n"
    return objects


def _read(diagnostics: BinaryIO) -> str:
    diagnostics.seek(0)
    return diagnostics.read().decode(errors="replace")


def _compile(text: str, diagnostics: BinaryIO) -> Any:
    """Compile with clang's messages (written to fd 2 by bcc's C++ side) going to ``diagnostics``."""
    from bcc import BPF  # type: ignore[import-not-found]  # the guest's; imported late so the host can test this file

    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(diagnostics.fileno(), 2)
    try:
        return BPF(text=text)
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def run_twin(name: str, twin: ModuleType, bpf: Any, out: TextIO, directory: Path, timeout: float) -> None:
    """Attach, wait for the agent's stop, detach; failures go to ``out`` and the status files."""

    def say(line: str) -> None:
        print(f"{twin.NAME}: {line}", file=out, flush=True)

    try:
        instance = twin.Twin(bpf, say)
        instance.attach()
    except Exception:
        out.write(traceback.format_exc())
        _write(directory / f"ready.{name}", "1")
        _write(directory / f"done.{name}", "1")
        return
    _write(directory / f"ready.{name}", "0")
    deadline = time.monotonic() + timeout
    status = "0"
    try:
        while time.monotonic() < deadline and not (directory / f"stop.{name}").exists():
            instance.poll(POLL_MS)
        instance.finish()
    except Exception:
        out.write(traceback.format_exc())
        status = "1"
    _write(directory / f"done.{name}", status)


def main() -> int:
    parser = argparse.ArgumentParser(description="run the bcc twins of a plan in one process")
    parser.add_argument("--plan", type=Path, required=True, help="twin names, one a line; each in <dir of plan>/NAME/")
    parser.add_argument("--dir", type=Path, required=True, help="handshake directory")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a twin stays attached at most")
    parser.add_argument("--compile-each", action="store_true", help="compile every twin alone (a benchmark)")
    args = parser.parse_args()
    names = args.plan.read_text().split()
    started = time.monotonic()
    twins: dict[str, ModuleType] = {}
    errors: dict[str, str] = {}
    for name in names:
        try:
            twins[name] = load_twin(args.plan.parent / name / f"{name}.py")
        except Exception:
            errors[name] = traceback.format_exc()
    objects = _each_alone(twins, errors) if args.compile_each else compile_all(twins, errors)
    seconds = time.monotonic() - started
    print(f"python {sys.version.split()[0]}, bcc {getattr(sys.modules.get('bcc'), '__version__', '?')}", flush=True)
    print(f"compiled {len(objects)} of {len(names)} twins in {seconds:.1f} s", flush=True)
    _write(args.dir / "compiled", f"{seconds:.1f}\n")
    for name in names:
        with (args.dir / f"out.{name}").open("w") as out:
            if name in objects:
                run_twin(name, twins[name], objects[name], out, args.dir, args.timeout)
            else:
                out.write(errors[name])
                _write(args.dir / f"ready.{name}", "1")
                _write(args.dir / f"done.{name}", "1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
