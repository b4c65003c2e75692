"""``tox -e bench``: the pipeline's speed, measured side by side in one run.

Prints, for the chosen targets (default: the default set):

- batch boot vs empty boot of the same kernel (goal: batch <= 1.3 x empty + the samples' own work);
- one boot per sample vs one boot per target;
- the matrix serially vs in parallel (goal: parallel >= 1.7 x faster on 2 cores);
- bcc twins: one clang compile per twin vs one compile of all twins, each in one boot;
- the twins that ride in an existing boot: the initramfs boot with its tracefs scripts vs without
  (goal: <= 1.1), and the bcc boot with its bpftrace programs, and with its perf scripts, vs without;
  medians of 3 boots each, alternated (``--riders tracefs`` times only the tracefs scripts);
- cold (empty cache: chroots and kernels made) vs warm (cached) full verification;
- with ``--machines``: each sample's build and run on a full Debian test machine vs in an initramfs guest.

Every number comes from running the real pipeline: mmdebstrap, the compiler,
QEMU and the kernels; nothing is simulated.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from .build.builder import BuildResult
from .build.environment import BuildEnv
from .paths import project_root
from .runners import qemu, testvm
from .runners.guests import BOOTS, Job, boot, build_all, environment_for, verify
from .runners.initramfs import make_initramfs
from .runners.markers import BootLog
from .sources.extract import load_samples
from .sources.sample import Sample
from .sources.targets import Catalog, Target, load_catalog
from .store import results

T = TypeVar("T")


def quiet(message: str) -> None:
    del message


def timed(action: Callable[[], T]) -> tuple[float, T]:
    started = time.monotonic()
    value = action()
    return time.monotonic() - started, value


@contextmanager
def cache_at(directory: Path) -> Iterator[None]:
    old = os.environ.get("KPROBE_DOCS_CACHE")
    os.environ["KPROBE_DOCS_CACHE"] = str(directory)
    try:
        yield
    finally:
        if old is None:
            del os.environ["KPROBE_DOCS_CACHE"]
        else:
            os.environ["KPROBE_DOCS_CACHE"] = old


def built_plan(
    env: BuildEnv, target: Target, samples: list[tuple[Sample, Path]], out: Path
) -> list[tuple[Sample, BuildResult]]:
    kernel = env.kernels[target.name]
    claimed = [(s, d) for s, d in samples if s.claims(target.arch, kernel.upstream)]
    return [(s, b) for s, b in build_all(env, kernel, claimed, out, quiet) if b.status == "ok"]


def empty_boot(env: BuildEnv, target: Target, out: Path) -> float:
    kernel = env.kernels[target.name]
    initrd = out / "empty.cpio"
    make_initramfs(Path(kernel.busybox), [], initrd)
    accel = qemu.accelerator(target.arch, lambda _: False)
    argv = qemu.command(target.arch, accel, kernel.vmlinuz, initrd, 0)
    seconds, follower = timed(lambda: qemu.boot_once(argv, {}, BootLog(), out / "empty-console.log"))
    if not follower.finished:
        raise RuntimeError(f"{target.name}: the empty boot did not finish; see {out / 'empty-console.log'}")
    return seconds


def row(what: str, a: float, b: float, verdict: str) -> str:
    return f"{what:44} {a:8.1f} s {b:8.1f} s {a / b:7.2f}  {verdict}"


def boots(target: Target, catalog: Catalog, samples: list[tuple[Sample, Path]], out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    env = environment_for(target, catalog, quiet)
    plan = built_plan(env, target, [(s, d) for s, d in samples if s.kind in BOOTS["kmod"]], out)
    empty = empty_boot(env, target, out)
    batch, (log, _) = timed(lambda: boot(target, env, plan, out, quiet))
    work = sum(r.seconds for r in log.runs)
    bound = 1.3 * empty + work
    lines = [row(f"{target.name}: batch vs empty+work ({len(plan)})", batch, empty + work,
                 f"goal batch <= {bound:.1f} s: {'met' if batch <= bound else 'MISSED'}")]  # fmt: skip
    each = 0.0
    for item in plan:
        started = time.monotonic()
        boot(target, env, [item], out, quiet)
        each += time.monotonic() - started
    lines.append(row(f"{target.name}: boot per sample vs per target", each, batch, "(higher = batching pays)"))
    return lines


def _check_complete(target: Target, log: BootLog, out: Path) -> None:
    """A timing is only a timing if the boot ran every twin at once."""
    if len(log.boot_seconds) != 1 or any(run.outcome != "completed" for run in log.runs):
        raise RuntimeError(f"{target.name}: a bcc boot did not run every twin; see {out / 'console-bcc.log'}")


def bcc_compiles(target: Target, catalog: Catalog, samples: list[tuple[Sample, Path]], out: Path) -> list[str]:
    env = environment_for(target, catalog, quiet)
    plan = built_plan(env, target, [(s, d) for s, d in samples if s.kind == "bcc"], out)
    if not plan:
        return []
    each, (log, _) = timed(lambda: boot(target, env, plan, out, quiet, bcc_mode="compile-each"))
    _check_complete(target, log, out)
    shared, (log, _) = timed(lambda: boot(target, env, plan, out, quiet))
    _check_complete(target, log, out)
    what = f"{target.name}: bcc compile per twin vs shared ({len(plan)})"
    return [row(what, each, shared, "(whole boots; higher = one compile pays)")]


# Kinds that ride in another kind's boot, with the boot and the most they may add to it (None: no goal).
RIDERS = (("tracefs", "kmod", 1.1), ("bpftrace", "bcc", None), ("perf", "bcc", None))
# Boots of each plan per rider: alternated, and the median taken, so one slow boot (the host busy) is not the ratio.
RIDER_BOOTS = 3
RIDING = frozenset(kind for kind, _, _ in RIDERS)


def boot_seconds(target: Target, env: BuildEnv, plan: list[tuple[Sample, BuildResult]], out: Path) -> float:
    return timed(lambda: boot(target, env, plan, out, quiet))[0]


def riders(
    target: Target, catalog: Catalog, samples: list[tuple[Sample, Path]], out: Path, kinds: frozenset[str] = RIDING
) -> list[str]:
    """What the twins of ``kinds`` that share a boot cost it: the boot with them vs without, medians of whole boots."""
    env = environment_for(target, catalog, quiet)
    lines = []
    for kind, guest, goal in [rider for rider in RIDERS if rider[0] in kinds]:
        hosts = [(s, d) for s, d in samples if s.kind == guest]
        base = built_plan(env, target, hosts, out)
        extra = built_plan(env, target, [(s, d) for s, d in samples if s.kind == kind], out)
        if not base or not extra:
            continue
        pairs = [(boot_seconds(target, env, base, out), boot_seconds(target, env, base + extra, out))
                 for _ in range(RIDER_BOOTS)]  # fmt: skip
        alone, both = statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs)
        verdict = f"goal <= {goal}: {'met' if both / alone <= goal else 'MISSED'}" if goal else "(the same boot)"
        spread = f"ratios {min(b / a for a, b in pairs):.2f}-{max(b / a for a, b in pairs):.2f}"
        lines.append(row(f"{target.name}: {guest} boot with {len(extra)} {kind} vs without", both, alone,
                         f"{verdict}; median of {RIDER_BOOTS}, {spread}"))  # fmt: skip
    return lines


def matrix(catalog: Catalog, targets: list[Target], samples: list[tuple[Sample, Path]], out: Path) -> list[str]:
    def run(jobs: int) -> float:
        job = Job(samples, targets, catalog, out / f"jobs{jobs}", out / f"jobs{jobs}.json", jobs=jobs)
        return timed(lambda: verify(job, quiet).records)[0]

    serial, parallel = run(1), run(len(targets))
    verdict = f"goal parallel >= 1.7x: {'met' if serial / parallel >= 1.7 else 'MISSED'}"
    return [row(f"matrix of {len(targets)} targets: serial vs parallel", serial, parallel, verdict)]


def cold_warm(catalog: Catalog, targets: list[Target], samples: list[tuple[Sample, Path]], out: Path) -> list[str]:
    job = Job(samples, targets, catalog, out / "cold", out / "cold.json", jobs=len(targets))
    with tempfile.TemporaryDirectory(prefix="kprobe-docs-cold-") as empty, cache_at(Path(empty)):
        cold = timed(lambda: verify(job, quiet).records)[0]
    warm = timed(lambda: verify(job, quiet).records)[0]
    verdict = f"goal warm <= 180 s: {'met' if warm <= 180 else 'MISSED'}"
    return [row(f"full verification: cold vs warm cache ({len(targets)})", cold, warm, verdict)]


MACHINE_PHASES = [
    ("install", "cp -r /mnt/kd/kprobe-docs /root/kprobe-docs && python3 -m venv --system-site-packages /opt/kd && "
                "/opt/kd/bin/pip install --no-index --find-links /mnt/kd/wheels /root/kprobe-docs"),
    ("main", "cd /root/kprobe-docs && /opt/kd/bin/kprobe-docs verify --target host --results /mnt/kd/out/main"),
]  # fmt: skip


def machine_vs_guest(
    release: testvm.Release, catalog: Catalog, samples: list[tuple[Sample, Path]], out: Path
) -> list[str]:
    """Each sample's build and run time on a test machine (a full Debian system) and in an initramfs guest."""
    target = catalog.targets[release.qemu_target]
    job = Job(samples, [target], catalog, out / "guest", out / "guest.json", jobs=1)
    guest = {r.sample: r for r in verify(job, quiet).records if r.seconds}
    session = testvm.Session(release, out / "machine", MACHINE_PHASES, quiet)
    session.boot()
    machine = {r.sample: r for path in session.results("main") for r in results.load_file(path).records if r.seconds}
    lines = []
    for name in [s.name for s, _ in samples if s.name in guest and s.name in machine]:
        for step in ("build", "run"):
            a, b = machine[name].seconds.get(step, 0.0), guest[name].seconds.get(step, 0.0)
            if a and b:
                lines.append(row(f"{release.machine}: {name} {step}", a, b, "(test machine vs initramfs guest)"))
    return lines


PerTarget = Callable[[Target, Catalog, list[tuple[Sample, Path]], Path], list[str]]
PER_TARGET: dict[str, PerTarget] = {"boots": boots, "bcc": bcc_compiles, "riders": riders}
PARTS = (*PER_TARGET, "matrix", "cold")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kprobe_docs.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="default", help="comma-separated targets, 'default' or 'all'")
    parser.add_argument("--skip-cold", action="store_true", help="leave out the cold-cache run (minutes)")
    machines = "also time each sample on a full Debian test machine against an initramfs guest"
    parser.add_argument("--machines", action="store_true", help=machines)
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts, of {','.join(PARTS)} (all)")
    kinds = ",".join(sorted(RIDING))
    parser.add_argument("--riders", default=kinds, help=f"the riding kinds the riders part times, of {kinds} (all)")
    args = parser.parse_args(argv)
    parts, riding = set(args.only.split(",")), frozenset(args.riders.split(","))
    if not parts <= set(PARTS):
        parser.error(f"--only: unknown part {sorted(parts - set(PARTS))[0]!r}; want some of {','.join(PARTS)}")
    if not riding <= RIDING:
        parser.error(f"--riders: unknown kind {sorted(riding - RIDING)[0]!r}; want some of {kinds}")
    per_target: dict[str, PerTarget] = {**PER_TARGET, "riders": functools.partial(riders, kinds=riding)}
    root = project_root()
    catalog = load_catalog()
    targets = catalog.select(args.targets.split(","))
    samples = load_samples(root, [], None)
    out = root / "build" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    print(f"{'measurement':44} {'A':>10} {'B':>10} {'A/B':>7}", flush=True)
    for target in targets:
        for name in [part for part in per_target if part in parts]:
            for line in per_target[name](target, catalog, samples, out / target.name):
                print(line, flush=True)
    if len(targets) > 1 and "matrix" in parts:  # parallel needs at least two targets to mean anything
        for line in matrix(catalog, targets, samples, out):
            print(line, flush=True)
    if args.machines:
        for release in testvm.RELEASES:
            for line in machine_vs_guest(release, catalog, samples, out / release.machine):
                print(line, flush=True)
    if not args.skip_cold and "cold" in parts:
        for line in cold_warm(catalog, targets, samples, out):
            print(line, flush=True)
    print(f"harness {results.harness_hash()}, {os.cpu_count()} cores", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
