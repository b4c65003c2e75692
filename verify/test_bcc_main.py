"""The bcc twins as a reader runs them: ``python3 NAME.py``, through each twin's own ``main()``.

Verification runs the twins through one runner that compiles them together and drives their ``Twin``
class; this test boots the bcc guest of the default targets again with every twin run alone, as the
page tells a reader to run it, and judges each run with the same expectations.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kprobe_docs.judge.check import evaluate
from kprobe_docs.paths import project_root
from kprobe_docs.runners.guests import boot, build_all, environment_for
from kprobe_docs.runners.markers import SampleRun
from kprobe_docs.sources.extract import load_samples
from kprobe_docs.sources.targets import load_catalog

ROOT = project_root(Path(__file__).parent)
TARGETS = ["debian-bookworm-amd64", "debian-trixie-amd64"]


@pytest.mark.parametrize("target_name", TARGETS)
def test_bcc_main(target_name: str, tmp_path: Path) -> None:
    """Every bcc twin the target is claimed for passes when run as ``python3 NAME.py``."""
    catalog = load_catalog()
    target = catalog.targets[target_name]
    env = environment_for(target, catalog, lambda _: None)
    kernel = env.kernels[target.name]
    twins = [(s, d) for s, d in load_samples(ROOT, [], None) if s.kind == "bcc" and s.claims("amd64", kernel.upstream)]
    assert twins, f"no bcc twin claims {target.name}"
    plan = [(s, b) for s, b in build_all(env, kernel, twins, tmp_path, lambda _: None) if b.status == "ok"]
    assert len(plan) == len(twins), "a twin did not byte-compile"
    log, _ = boot(target, env, plan, tmp_path, lambda _: None, bcc_mode="main")
    runs = {r.name: r for r in log.runs}
    failed = []
    for sample, _ in plan:
        run = runs.get(sample.name, SampleRun(sample.name, outcome="unbooted", console=[log.failure, *log.tail]))
        verdict = evaluate(run, sample, kernel.context())
        if not verdict.passed:
            failed.append(f"{sample.name}: {verdict.reason}\n  " + "\n  ".join(run.sections.get("out", [])[-8:]))
    assert not failed, "\n".join(failed)
