"""Re-verification: a (sample, target) is redone only when its source, kernel or harness changed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kprobe_docs.build.environment import Kernel
from kprobe_docs.runners.guests import Job, _reusable
from kprobe_docs.sources.sample import make_sample
from kprobe_docs.sources.targets import load_catalog
from kprobe_docs.store import results
from kprobe_docs.store.results import Record

SAMPLE = make_sample("demo", {"kind": "kmod", "expect": "x"}, "int x;\n", "docs/p.md", 1)
KERNEL = Kernel(
    "t", "amd64", "6.1.0-1-amd64", "linux-image-6.1.0-1-amd64", "6.1.1-1", "abc", "/v", "/h", "/c", "/b", "/m"
)


def _job(record: Record | None) -> Job:
    catalog = load_catalog()
    previous = results.Newest({("demo", "t"): record} if record else {}, {})
    return Job([], [], catalog, Path("/b"), Path("/r.json"), previous=previous)


def _old(**changes: object) -> Record:
    provenance = {"kernel_sha256": "abc", "harness": results.harness_hash(), "date": "2026-11-20"}
    record = Record("demo", "t", "kmod", "docs/p.md", SAMPLE.source_hash(), "pass", provenance=provenance)
    return replace(record, **changes)  # type: ignore[arg-type]


def test_unchanged_pair_is_carried_over_with_its_date() -> None:
    target = next(iter(load_catalog().targets.values()))
    target = replace(target, name="t")
    reused = _reusable(_job(_old()), SAMPLE, target, KERNEL)
    assert reused is not None and reused.reused_from == "2026-11-20"


def test_any_change_redoes_the_pair() -> None:
    target = replace(next(iter(load_catalog().targets.values())), name="t")
    assert _reusable(_job(None), SAMPLE, target, KERNEL) is None
    assert _reusable(_job(_old(source_hash="other")), SAMPLE, target, KERNEL) is None
    assert (
        _reusable(
            _job(_old(provenance={"kernel_sha256": "new", "harness": results.harness_hash()})), SAMPLE, target, KERNEL
        )
        is None
    )
    assert _reusable(_job(_old(provenance={"kernel_sha256": "abc", "harness": "old"})), SAMPLE, target, KERNEL) is None
    assert _reusable(_job(_old(verdict="not-claimed")), SAMPLE, target, KERNEL) is None
