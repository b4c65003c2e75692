"""The twin runner's bookkeeping: which twin a clang error in the shared program belongs to."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType, SimpleNamespace

from kprobe_docs.runners import twin_runner


def _twin(name: str, text: str) -> ModuleType:
    module = ModuleType(name)
    module.BPF_TEXT = text  # type: ignore[attr-defined]
    return module


def test_errors_in_the_shared_program_are_blamed_on_their_twin() -> None:
    twins = {"a": _twin("a", "int a1;\nint a2;"), "b": _twin("b", "\nint b1(void)\n{\n\treturn nope;\n}\n")}
    text, owners = twin_runner._concatenate(twins)
    assert owners == {"a": 1, "b": 3}
    clang = "/virtual/main.c:6:9: error: use of undeclared identifier 'nope'"
    match = twin_runner.ERROR_RE.search(clang)
    assert match is not None
    line = int(match[1])
    assert text.splitlines()[line - 1] == "\treturn nope;"
    assert twin_runner._owner(line, owners) == "b"
    assert twin_runner._owner(2, owners) == "a"


def test_guest_side_python_parses_as_python_3_9() -> None:
    """The runner and the twins run with the guest release's python3: 3.9 on bullseye."""
    root = Path(__file__).resolve().parent.parent
    files = [Path(twin_runner.__file__), *sorted((root / "samples").glob("*_bcc/*.py"))]
    assert len(files) > 1
    for path in files:
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 9))


def test_attached_events_read_both_bcc_layouts() -> None:
    old = SimpleNamespace(kprobe_fds={b"p_kernel_clone": 5})  # bcc 0.18: event -> fd, deleted on detach
    # bcc 0.26 and later: event -> {program: fd}, left empty on detach
    new = SimpleNamespace(kprobe_fds={b"p_kernel_clone": {}, b"r_kernel_clone": {b"kre_return": 7}})
    assert twin_runner._attached(old) == {b"p_kernel_clone"}
    assert twin_runner._attached(new) == {b"r_kernel_clone"}
