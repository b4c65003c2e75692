"""Named and conditional expectation lines: which apply on a target, and how a bad one reads."""

from __future__ import annotations

import re

import pytest

from kprobe_docs.judge.check import evaluate
from kprobe_docs.runners.markers import SampleRun
from kprobe_docs.sources.expectations import Context, applicable, parse
from kprobe_docs.sources.sample import SampleError, make_sample

IBT = Context("amd64", (6, 12), {"CONFIG_X86_KERNEL_IBT": "y"})
OLD = Context("amd64", (6, 1), {})
ARM = Context("arm64", (6, 12), {})
LINES = (
    r"@landing when(amd64 CONFIG_X86_KERNEL_IBT=y) planted at f\+0x4$",
    r"@landing0 when(amd64 CONFIG_X86_KERNEL_IBT!=y) planted at f\+0x0$",
    r"when(arm64 >=6.12 <7.0) planted at f\+0x0$",
    r"removed$",
)


def test_a_line_applies_where_its_conditions_hold() -> None:
    assert [e.pattern for e in applicable(LINES, IBT)] == [r"planted at f\+0x4$", "removed$"]
    assert [e.name for e in applicable(LINES, OLD)] == ["landing0", ""]
    assert [e.pattern for e in applicable(LINES, ARM)] == [r"planted at f\+0x0$", "removed$"]
    assert [e.pattern for e in applicable(LINES, Context("arm64", (7, 2), {}))] == ["removed$"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("when(sparc64) x", "'sparc64' is neither an arch"),
        ("when() x", "give at least one condition"),
        ("@n when(amd64) (", "bad regular expression '('"),
    ],
)
def test_a_bad_line_says_what_is_wrong(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse(line)


def test_a_name_given_twice_is_refused_where_the_sample_is_defined() -> None:
    options = {"kind": "kmod", "expect": "@a x\n@a y"}
    with pytest.raises(SampleError, match=r"docs/p.md:4: .*the name @a is given to two lines"):
        make_sample("demo", options, "int x;\n", "docs/p.md", 4)


def test_the_verdict_keeps_what_met_each_named_line() -> None:
    sample = make_sample("demo", {"kind": "kmod", "expect": "\n".join(LINES)}, "int x;\n", "docs/p.md", 1)
    run = SampleRun("demo", events=dict.fromkeys(("insmod1", "rmmod1", "insmod2", "rmmod2"), "0"), outcome="completed")
    run.sections = {"log1": ["[1.0] planted at f+0x4", "[1.1] removed"]}
    verdict = evaluate(run, sample, IBT)
    assert verdict.verdict == "pass"
    assert verdict.named == {"landing": "[1.0] planted at f+0x4"}
    assert evaluate(run, sample, OLD).reason == (
        r"expected log line not found: /planted at f\+0x0$/; the nearest line printed: [1.0] planted at f+0x4"
    )
