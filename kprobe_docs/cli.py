"""``kprobe-docs``: extract, prepare, verify and report.

kprobe-docs setup                 install the system packages the pipeline needs
kprobe-docs targets               list targets and what is cached for them
kprobe-docs prepare TARGET...     make (or reuse) the build environment and kernel
kprobe-docs extract [--check]     write samples/ from docs/, or check they agree
kprobe-docs verify [options]      build, boot and check samples; print the table
kprobe-docs results               print the table of the newest results
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from . import buildenv, extract, results, system
from .buildenv import BuildEnvError
from .extract import SamplesError
from .paths import ProjectError, project_root
from .results import ResultsError
from .runner import Job, environment_for, run_id, verify
from .sample import SampleError
from .system import SetupError
from .targets import TargetError, find_mirror, load_catalog, system_sources


def progress(message: str) -> None:
    sys.stderr.write(message + "\n")  # one write: parallel targets do not interleave mid-line
    sys.stderr.flush()


def cmd_setup(args: argparse.Namespace) -> int:
    system.ensure(progress, tests=True)
    print("system packages: all present")
    return 0


def cmd_targets(args: argparse.Namespace) -> int:
    catalog = load_catalog()
    mirror = find_mirror(system_sources())
    width = max(len(name) for name in catalog.targets)
    for target in catalog.targets.values():
        env = buildenv.cached(catalog.siblings(target), mirror)
        state = "not prepared"
        if env is not None:
            kernel = env.kernels[target.name]
            state = f"prepared: {kernel.package} {kernel.version}"
        mark = "default" if target.name in catalog.default else ""
        print(f"{target.name:{width}}  {target.release:9} {target.arch:6} {mark:8} {state}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    system.ensure(progress)
    catalog = load_catalog()
    for target in catalog.select(args.targets):
        env = environment_for(target, catalog, progress)
        kernel = env.kernels[target.name]
        print(f"{target.name}: {kernel.package} {kernel.version} in {env.directory}")
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    root = project_root()
    samples = extract.collect(root / "docs", root)
    if args.check:
        problems = extract.differences(samples, root / "samples")
        for problem in problems:
            print(problem)
        if problems:
            print("samples/ is out of sync with docs/: run 'kprobe-docs extract'", file=sys.stderr)
        return 1 if problems else 0
    extract.write(samples, root / "samples")
    print(f"extracted {len(samples)} samples into {root / 'samples'}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    if "host" in args.targets:
        print(
            "kprobe-docs: --target host (checking the running kernel of a real test machine) "
            "is not available yet; verify on QEMU targets instead (see 'kprobe-docs targets')",
            file=sys.stderr,
        )
        return 2
    root = project_root()
    system.ensure(progress)
    catalog = load_catalog()
    targets = catalog.select(args.targets)
    with tempfile.TemporaryDirectory(prefix="kprobe-docs-fixtures-") as scratch:
        samples = extract.load_samples(root, args.samples, Path(scratch) if args.fixtures else None)
        results_file = Path(args.results or root / "results") / f"{run_id()}.json"
        previous = None if args.force else results.newest(results_file.parent)
        build_dir = Path(args.build_dir or root / "build")
        job = Job(samples, targets, catalog, build_dir, results_file, jobs=args.jobs, previous=previous)
        records = verify(job, progress)
    print(results.table(records))
    print(f"results: {results_file}")
    return 1 if results.failures(records) else 0


def cmd_results(args: argparse.Namespace) -> int:
    root = project_root()
    records = list(results.newest(root / "results").records.values())
    if not records:
        print("no results yet: run 'kprobe-docs verify'")
        return 1
    print(results.table(records))
    return 0


def names(value: str) -> list[str]:
    """Comma-separated names, as options take them."""
    return [v for v in value.split(",") if v]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="kprobe-docs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("setup", help="install missing system packages (apt, as root)").set_defaults(func=cmd_setup)
    sub.add_parser("targets", help="list targets and their cache state").set_defaults(func=cmd_targets)
    prep = sub.add_parser("prepare", help="make the build environment and kernel of targets")
    prep.add_argument("targets", nargs="+", help="target names, 'default' or 'all'")
    prep.set_defaults(func=cmd_prepare)
    ext = sub.add_parser("extract", help="write samples/ from the pages in docs/")
    ext.add_argument("--check", action="store_true", help="only report differences; exit 1 if any")
    ext.set_defaults(func=cmd_extract)
    ver = sub.add_parser("verify", help="build, boot and check samples on targets")
    ver.add_argument("--target", "--targets", dest="targets", type=names, default=["default"],
                     help="comma-separated target names, 'default' (the default) or 'all'")  # fmt: skip
    ver.add_argument("--samples", type=names, default=[], help="comma-separated sample names (default: all)")
    ver.add_argument(
        "--fixtures",
        action="store_true",
        help="also run the fault fixtures of verify/fixtures/ (they fail by design: exit status 1)",
    )
    ver.add_argument("--results", help="directory for the results file (default: results/)")
    ver.add_argument("--build-dir", help="directory for modules, logs and initramfs (default: build/)")
    ver.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="targets verified at once (default: cores)")
    ver.add_argument("--force", action="store_true", help="redo pairs whose source, kernel and harness are unchanged")
    ver.set_defaults(func=cmd_verify)
    sub.add_parser("results", help="print the table of the newest results").set_defaults(func=cmd_results)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (SampleError, SamplesError, TargetError, BuildEnvError, SetupError, ProjectError, ResultsError) as exc:
        print(f"kprobe-docs: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kprobe-docs: interrupted; finished targets are saved in the results file", file=sys.stderr)
        return 130
