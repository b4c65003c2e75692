"""Run the bcc twins of a plan in one process, inside a bcc guest.

Runs with the guest release's python3 (3.9 on bullseye) and bcc (0.18 on
bullseye), not in the project's environment.  Each twin is a sample file
defining ``NAME``, ``BPF_TEXT`` and ``Twin(bpf, say)`` with ``attach()``,
``poll(ms)`` and ``finish()``.  Loading bcc and compiling costs most of a
twin's time under TCG, so all twins' BPF texts are compiled as one program
(their identifiers carry per-twin prefixes).  When that fails, the twins that
clang's errors point at are compiled alone: one that fails alone is left
out with its own errors, and the rest are compiled together again; when no
error can be pinned on a twin, every twin is compiled alone.

Handshake with the agent, in ``--dir``: ``compiled`` once compiling is over;
per twin, the agent creates ``go.NAME`` once it is ready to watch the
kernel log; the runner attaches and writes ``ready.NAME`` (``0`` attached,
else ``1``); the agent runs the trigger and creates ``stop.NAME``; the twin
detaches and reports to ``out.NAME``, and ``done.NAME`` holds ``0`` (or
``1`` if it failed).  Probes a failed twin left attached are removed before
the next twin starts.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import importlib.util
import os
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import IO, Any, BinaryIO, TextIO

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
    """One BPF object shared by the twins that compile together; the others' errors go to ``errors``."""
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
        suspects = {_owner(int(m[1]), owners) for m in ERROR_RE.finditer(failure)}
        broken = {name for name in suspects if _fails_alone(name, pending[name], errors)}
        if not broken:  # an error no twin causes alone, or one clang names no line for
            return _each_alone(pending, errors)
        for name in broken:
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


def _compile_alone(name: str, twin: ModuleType, errors: dict[str, str]) -> Any:
    """One twin's BPF object, or None with its own errors kept in ``errors``."""
    with tempfile.TemporaryFile() as diagnostics:
        try:
            return _compile(twin.BPF_TEXT, diagnostics)
        except Exception:
            clang = _read(diagnostics)
            first = ERROR_RE.search(clang)
            where = f"line {first[1]} of BPF_TEXT: {first[2]}" if first else "see above"
            errors[name] = f"{traceback.format_exc()}{clang}BPF compile error: {where}\n"
            return None


def _fails_alone(name: str, twin: ModuleType, errors: dict[str, str]) -> bool:
    return _compile_alone(name, twin, errors) is None


def _each_alone(twins: dict[str, ModuleType], errors: dict[str, str]) -> dict[str, Any]:
    print("# compiling each twin alone", flush=True)
    objects = {name: _compile_alone(name, twin, errors) for name, twin in twins.items()}
    return {name: bpf for name, bpf in objects.items() if bpf is not None}


def _read(diagnostics: BinaryIO) -> str:
    diagnostics.seek(0)
    return diagnostics.read().decode(errors="replace")


@contextlib.contextmanager
def _fd2_to(file: IO[Any]) -> Iterator[None]:
    """Send fd 2 to ``file``: bcc's C++ side (clang, libbcc) writes its messages there, not to sys.stderr."""
    sys.stderr.flush()
    file.flush()
    saved = os.dup(2)
    os.dup2(file.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _compile(text: str, diagnostics: BinaryIO) -> Any:
    """Compile with clang's messages going to ``diagnostics``."""
    from bcc import BPF  # type: ignore[import-not-found]  # the guest's; imported late so the host can test this file

    with _fd2_to(diagnostics):
        return BPF(text=text)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _wait_for(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(POLL_MS / 1000)
    return path.exists()


def _attached(bpf: Any) -> set[bytes]:
    """Events with a program attached: bcc 0.18 maps each to an fd, later ones to {program: fd}."""
    return {event for event, fds in bpf.kprobe_fds.items() if not isinstance(fds, dict) or fds}


def _detach_leftovers(bpf: Any, before: set[bytes], out: TextIO) -> bool:
    """Detach kprobes and kretprobes the twin attached and did not detach; True if there were any."""
    left = sorted(_attached(bpf) - before)
    if left:
        print(f"# left attached, detached by the runner: {b' '.join(left).decode()}", file=out)
    for event in left:
        try:
            bpf.detach_kprobe_event(event)
        except Exception as exc:
            print(f"# detaching {event.decode()} failed: {exc}", file=out)
    return bool(left)


def _run_attached(instance: Any, stop: Path, timeout: float) -> bool:
    """Poll until the agent says stop, then finish (also after a failed poll); False if stop never came."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not stop.exists():
            started = time.monotonic()
            instance.poll(POLL_MS)
            time.sleep(max(0.0, POLL_MS / 1000 - (time.monotonic() - started)))  # a poll that returns at once
    finally:
        instance.finish()
    return stop.exists()


def run_twin(name: str, twin: ModuleType, bpf: Any, out: TextIO, directory: Path, timeout: float) -> None:
    """Attach, wait for the agent's stop, detach; failures go to ``out`` and the status files.

    The last line of ``out`` is what a failure is reported as, so a traceback comes last.
    """

    def say(line: str) -> None:
        print(f"{twin.NAME}: {line}", file=out, flush=True)

    before = _attached(bpf)
    status, failure = "0", ""
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), _fd2_to(out):
        try:
            instance = twin.Twin(bpf, say)
            instance.attach()
        except Exception:
            instance, status, failure = None, "1", traceback.format_exc()
        if instance is None:
            _detach_leftovers(bpf, before, out)
        out.write(failure)
        out.flush()
        _write(directory / f"ready.{name}", status)
        if instance is not None:
            try:
                if not _run_attached(instance, directory / f"stop.{name}", timeout):
                    status, failure = "1", f"# the agent's stop never came in {timeout:.0f} s\n"
            except Exception:
                status, failure = "1", traceback.format_exc()
            if _detach_leftovers(bpf, before, out):
                status = "1"
            out.write(failure)
    out.flush()
    _write(directory / f"done.{name}", status)


def _fail(name: str, error: str, out: TextIO, directory: Path) -> None:
    out.write(error)
    out.flush()
    _write(directory / f"ready.{name}", "1")
    _write(directory / f"done.{name}", "1")


def main() -> int:
    parser = argparse.ArgumentParser(description="run the bcc twins of a plan in one process")
    parser.add_argument("--plan", type=Path, required=True, help="twin names, one a line; each in <dir of plan>/NAME/")
    parser.add_argument("--dir", type=Path, required=True, help="handshake directory")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a twin stays attached at most")
    parser.add_argument("--compile-each", action="store_true", help="compile every twin alone (a benchmark)")
    args = parser.parse_args()
    # A crash in clang or libbcc: its Python traceback goes to the runner's own output, whatever fd 2 is then.
    faulthandler.enable(file=os.fdopen(os.dup(2), "w"))
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
        if not _wait_for(args.dir / f"go.{name}", args.timeout):
            print(f"# the agent never started {name}; stopping", flush=True)
            return 1
        with (args.dir / f"out.{name}").open("w") as out:
            if name in objects:
                run_twin(name, twins[name], objects[name], out, args.dir, args.timeout)
            else:
                _fail(name, errors[name], out, args.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
