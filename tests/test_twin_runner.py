"""The twin runner's bookkeeping: which twin a clang error in the shared program belongs to."""

from __future__ import annotations

from types import ModuleType

from kprobe_docs import twin_runner


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
