"""The sample directive's contract: what is accepted and how refusals read."""

from __future__ import annotations

import json

import pytest

from kprobe_docs.sources.sample import KernelRange, Sample, SampleError, make_sample

GOOD = {"kind": "kmod", "expect": "hello\n", "kernels": ">=5.10", "params": "a=1 b=x"}


def test_valid_sample_parses_lists_and_ranges() -> None:
    sample = make_sample("demo", dict(GOOD), "int x;\n", "docs/p.md", 7)
    assert sample.params == ("a=1", "b=x")
    assert sample.expect == ("hello",)
    assert sample.claims("amd64", (6, 1))
    assert not sample.claims("amd64", (5, 4))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kind": "rust", "expect": "x"}, "kind: want one of kmod, bcc, tracefs, bpftrace"),
        ({"kind": "tracefs", "expect": "x", "trigger": "true"}, "a tracefs sample takes no 'trigger'"),
        ({"kind": "tracefs", "expect": "x", "params": "a=1"}, "a tracefs sample takes no 'params'"),
        ({"kind": "bpftrace", "expect": "x", "listed": "k +f"}, "a bpftrace sample takes no 'listed'"),
        ({"kind": "perf", "expect": "x", "trigger": "true"}, "a perf sample takes no 'trigger'"),
        ({"kind": "bcc", "expect": "x", "kernel-modules": "dummy"}, "a bcc sample takes no 'kernel-modules'"),
        ({**GOOD, "kernel-modules": "../evil"}, "kernel-modules: want module names such as 'dummy'"),
        ({**GOOD, "colour": "red"}, "unknown option 'colour'"),
        ({**GOOD, "expect": "("}, "expect: bad regular expression"),
        ({"kind": "kmod"}, "must name at least one log line"),
        ({**GOOD, "build": "fails"}, "needs a build-error pattern"),
        ({**GOOD, "arches": "sparc64"}, "arches: want some of amd64 i386 arm64, got 'sparc64'"),
        ({**GOOD, "params": "a='1 2'"}, "params: want name=value"),
        ({**GOOD, "kernels": "5.10+"}, "bad kernel range"),
        ({**GOOD, "timeout": 30}, "must be text: quote it"),
    ],
)
def test_malformed_directive_names_page_and_line(options: dict[str, object], message: str) -> None:
    with pytest.raises(SampleError) as error:
        make_sample("demo", options, "int x;\n", "docs/p.md", 12)
    assert str(error.value).startswith("docs/p.md:12: kprobe-sample demo: ")
    assert message in str(error.value)


def test_empty_code_is_refused() -> None:
    with pytest.raises(SampleError, match="holds no code"):
        make_sample("demo", dict(GOOD), "\n", "docs/p.md", 1)


def test_kernel_range_bounds() -> None:
    claim = KernelRange(">=5.10,<7.0")
    assert claim.contains((5, 10)) and claim.contains((6, 12))
    assert not claim.contains((7, 0)) and not claim.contains((4, 15))
    assert KernelRange("all").contains((2, 6))


@pytest.mark.parametrize("name", ["plan", "run", "api", "api_fprobe"])
def test_names_the_pipeline_uses_are_refused_with_why(name: str) -> None:
    with pytest.raises(SampleError, match=rf"docs/p.md:3: kprobe-sample {name}: sample name '{name}' is reserved"):
        make_sample(name, dict(GOOD), "int x;\n", "docs/p.md", 3)


def test_kernel_modules_round_trip_and_leave_other_samples_hashes_alone() -> None:
    plain = make_sample("demo", GOOD, "int x;\n", "p", 1)
    assert "kernel_modules" not in plain.spec()
    script = make_sample(
        "demo_tracefs", {"kind": "tracefs", "expect": "x", "kernel-modules": "dummy"}, "true\n", "p", 1
    )
    assert script.kernel_modules == ("dummy",)
    again = Sample.from_spec(json.loads(json.dumps(script.spec())), script.code)
    assert again.kernel_modules == ("dummy",) and again.source_hash() == script.source_hash()
    assert Sample.from_spec(plain.spec(), plain.code).source_hash() == plain.source_hash()
