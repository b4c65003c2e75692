"""``kprobe-docs``: extract, prepare, verify and report.

kprobe-docs setup                 install the system packages the pipeline needs
kprobe-docs targets               list targets and what is cached for them
kprobe-docs prepare TARGET...     make (or reuse) the build environment and kernel
kprobe-docs extract [--check]     write samples/ from docs/, or check they agree
kprobe-docs verify [options]      build, boot and check samples; print the table
kprobe-docs verify --target host  the same on the running kernel of this machine (root; a test machine)
kprobe-docs lava export|run|import  the module boots as LAVA jobs: write them, run them with lava-run, judge their logs
kprobe-docs results [--schema]    print the table of the newest results (or their JSON Schema)
kprobe-docs results import FILE   merge results files from other machines into results/
kprobe-docs publish [--dist DIR]  pack the site, the man pages and the results for release (dist/)
kprobe-docs install-man           install the man pages (/usr/local/share/man; --prefix, --uninstall)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from pathlib import Path

from . import interrupt, system
from .build import environment as buildenv
from .build.environment import BuildEnvError
from .paths import ProjectError, project_root
from .publish import manpages, release
from .publish.manpages import ManError
from .publish.release import PublishError
from .runners import host, lava
from .runners.guests import Job, environment_for, run_id, verify
from .runners.host import HostError
from .runners.lava import LavaError
from .sources import extract
from .sources.extract import SamplesError
from .sources.sample import SampleError
from .sources.targets import TargetError, find_mirror, load_catalog, system_sources
from .store import results
from .store.results import ResultsError
from .system import SetupError


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
    root = project_root()
    host_only = _host_options(args)
    with tempfile.TemporaryDirectory(prefix="kprobe-docs-fixtures-") as scratch:
        samples = extract.load_samples(root, args.samples or [], Path(scratch) if args.fixtures else None)
        results_file = Path(args.results or root / "results") / f"{run_id()}.json"
        build_dir = Path(args.build_dir or root / "build")
        if host_only:
            signing = host.Signing(Path(args.sign_key), Path(args.sign_cert)) if args.sign_key else None
            plan = host.Plan(samples, results_file, build_dir / "host", signing, args.resume)
            done = host.verify_host(plan, progress)
        else:
            system.ensure(progress)
            catalog = load_catalog()
            previous = None if args.force else _previous(results_file.parent)
            job = Job(samples, catalog.select(args.targets), catalog, build_dir, results_file, args.jobs, previous)
            done = verify(job, progress)
    print(results.table(done.records))
    failed = results.reasons(done.records)
    if failed:
        print(f"why:\n{failed}\n")
    print(f"results: {done.path}")
    return 1 if results.failures(done.records) else 0


def _host_options(args: argparse.Namespace) -> bool:
    """Whether this is a run on the host; the host's own options are refused elsewhere, and checked here."""
    host_only = "host" in args.targets
    if host_only and args.targets != ["host"]:
        raise host.HostError("--target host runs alone: give the QEMU targets in a run of their own")
    if not host_only and (args.sign_key or args.sign_cert or args.resume):
        raise host.HostError("--sign-key, --sign-cert and --resume are for --target host only")
    if bool(args.sign_key) != bool(args.sign_cert):
        raise host.HostError("give both --sign-key and --sign-cert (the key and the certificate enrolled for it)")
    for path in filter(None, (args.sign_key, args.sign_cert)):
        if not Path(path).is_file():
            raise host.HostError(f"{path}: no such file")
    return host_only


def _previous(directory: Path) -> results.Newest:
    """The newest results to carry unchanged pairs over from; a file that cannot be used is named and left out."""
    newest = results.newest(directory)
    for problem in newest.problems:
        progress(f"warning: {problem}; its results are not carried over")
    return newest


def cmd_lava_export(args: argparse.Namespace) -> int:
    system.ensure(progress)
    root = project_root()
    catalog = load_catalog()
    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="kprobe-docs-fixtures-") as scratch:
        samples = extract.load_samples(root, args.samples or [], Path(scratch) if args.fixtures else None)
        job = lava.Export(samples, catalog.select(args.targets), catalog, out, args.artifacts_url, args.device_type,
                          args.jobs)  # fmt: skip
        for directory in lava.export(job, progress):
            print(directory)
    print(f"run them here with: kprobe-docs lava run {out}; then: kprobe-docs lava import {out}")
    return 0


def cmd_lava_run(args: argparse.Namespace) -> int:
    system.ensure(progress, lava=True)
    lava.run(lava.job_dirs(Path(args.dir)), progress, args.jobs)
    print(f"judge them with: kprobe-docs lava import {args.dir}")
    return 0


def cmd_lava_import(args: argparse.Namespace) -> int:
    root = project_root()
    with tempfile.TemporaryDirectory(prefix="kprobe-docs-fixtures-") as scratch:
        samples = {s.name: s for s, _ in extract.load_samples(root, [], Path(scratch))}
    results_file = Path(args.results or root / "results") / f"{run_id()}.json"
    records = lava.import_dirs(lava.job_dirs(Path(args.dir)), samples, results_file)
    print(results.table(records))
    failed = results.reasons(records)
    if failed:
        print(f"why:\n{failed}\n")
    print(f"results: {results_file}")
    return 1 if results.failures(records) else 0


def cmd_results(args: argparse.Namespace) -> int:
    if args.schema:
        print(json.dumps(results.schema(), indent=2, sort_keys=True))
        return 0
    root = project_root()
    if args.action == "import":
        return _import(root, [Path(f) for f in args.files])
    newest = results.newest(root / "results")
    for problem in newest.problems:
        print(f"kprobe-docs: left out: {problem}", file=sys.stderr)
    records = list(newest.records.values())
    if not records:
        print("no results yet: run 'kprobe-docs verify'")
        return 1
    print(results.table(records))
    return 1 if newest.problems else 0


def _import(root: Path, files: list[Path]) -> int:
    """Merge results files from other machines into results/, after checking each against the schema."""
    if not files:
        raise ResultsError("results import: name the results files to import")
    known = {s.name: s.source_hash() for s, _ in extract.load_samples(root, [], None)}
    for path in files:
        for line in results.import_file(path, root / "results", known):
            print(line)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    root = project_root()
    written = release.publish(root, Path(args.dist) if args.dist else root / "dist", progress)
    for path in written:
        print(path)
    return 0


def cmd_install_man(args: argparse.Namespace) -> int:
    prefix = Path(args.prefix)
    if args.uninstall and args.source:
        raise ManError("--uninstall removes what the install list names; --from has no meaning with it")
    if args.uninstall:
        said = manpages.uninstall(prefix)
    else:
        source = Path(args.source) if args.source else project_root() / "build" / "docs" / "man"
        said = manpages.install(source, prefix)
    for line in said:
        print(line)
    if not args.uninstall and prefix != manpages.DEFAULT_PREFIX:
        print(f"read them with: MANPATH={prefix} man 9 register_kretprobe")
    return 0


def names(value: str) -> list[str]:
    """Comma-separated names, as options take them; an empty list is refused."""
    found = [v.strip() for v in value.split(",") if v.strip()]
    if not found:
        raise argparse.ArgumentTypeError("give at least one name")
    return found


def positive(value: str) -> int:
    """A count of at least 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than 1")
    return number


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
    ver.add_argument("--samples", type=names, default=None, help="comma-separated sample names (default: all)")
    ver.add_argument(
        "--fixtures",
        action="store_true",
        help="also run the fault fixtures of verify/fixtures/ (they fail by design: exit status 1)",
    )
    ver.add_argument("--results", help="directory for the results file (default: results/)")
    ver.add_argument("--build-dir", help="directory for modules, logs and initramfs (default: build/)")
    ver.add_argument(
        "--jobs", type=positive, default=os.cpu_count() or 1, help="targets verified at once (default: cores)"
    )
    ver.add_argument("--force", action="store_true", help="redo pairs whose source, kernel and harness are unchanged")
    ver.add_argument("--sign-key", help="host: sign the modules with this private key (the kernel enforces signatures)")
    ver.add_argument("--sign-cert", help="host: the certificate of --sign-key, enrolled in the machine (mokutil)")
    ver.add_argument("--resume", action="store_true", help="host: go on with a run the machine crashed in")
    ver.set_defaults(func=cmd_verify)
    _lava_parser(sub)
    res = sub.add_parser("results", help="print the table of the newest results, or import results files")
    res.add_argument("action", nargs="?", choices=["import"], help="import: merge FILES into results/")
    res.add_argument("files", nargs="*", help="results files from other machines, to import")
    res.add_argument("--schema", action="store_true", help="print the JSON Schema of a results file instead")
    res.set_defaults(func=cmd_results)
    pub = sub.add_parser("publish", help="pack the site, the man pages and the results into release files")
    pub.add_argument("--dist", help="where the release files go (default: dist/)")
    pub.set_defaults(func=cmd_publish)
    man = sub.add_parser("install-man", help="install the man pages where man finds them")
    man.add_argument("--prefix", default=str(manpages.DEFAULT_PREFIX),
                     help=f"man directory to install into (default: {manpages.DEFAULT_PREFIX})")  # fmt: skip
    man.add_argument("--from", dest="source", help="a man page directory, or the man tarball of a release "
                     "(kprobe-docs-VERSION-man.tar.gz); default: build/docs/man")  # fmt: skip
    man.add_argument("--uninstall", action="store_true", help="remove exactly the pages installed under --prefix")
    man.set_defaults(func=cmd_install_man)
    return top


def _lava_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = sub.add_parser("lava", help="the module boots as LAVA jobs: export, run with lava-run, import")
    verbs = top.add_subparsers(dest="verb", required=True)
    exp = verbs.add_parser("export", help="build the samples and write a LAVA job per target")
    exp.add_argument("--target", "--targets", dest="targets", type=names, default=["default"],
                     help="comma-separated target names, 'default' (the default) or 'all'")  # fmt: skip
    exp.add_argument("--samples", type=names, default=None, help="comma-separated sample names (default: all)")
    exp.add_argument("--fixtures", action="store_true", help="also export the fault fixtures (they fail by design)")
    exp.add_argument("--out", required=True, help="directory for the jobs, one subdirectory per target")
    exp.add_argument("--artifacts-url", default="",
                     help="also write lab-job.yaml, its files at URL/<target>/ (URL serves --out)")  # fmt: skip
    exp.add_argument("--device-type", default=lava.DEVICE_TYPE,
                     help=f"the lab's device type for lab-job.yaml (default: {lava.DEVICE_TYPE})")  # fmt: skip
    exp.add_argument("--jobs", type=positive, default=os.cpu_count() or 1, help="targets exported at once")
    exp.set_defaults(func=cmd_lava_export)
    run = verbs.add_parser("run", help="run exported jobs here with lava-run (root), in QEMU under TCG")
    run.add_argument("dir", help="what 'lava export' wrote: its --out, or one target's directory in it")
    run.add_argument("--jobs", type=positive, default=os.cpu_count() or 1, help="targets run at once")
    run.set_defaults(func=cmd_lava_run)
    imp = verbs.add_parser("import", help="judge the jobs' logs (job-N.log) and write a results file")
    imp.add_argument("dir", help="the export's --out, or one target's directory, holding the job logs")
    imp.add_argument("--results", help="directory for the results file (default: results/)")
    imp.set_defaults(func=cmd_lava_import)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with interrupt.handled():
            return int(args.func(args))
    except (
        SampleError, SamplesError, TargetError, BuildEnvError, SetupError, ProjectError, ResultsError, HostError,
        PublishError, ManError, LavaError,
    ) as exc:  # fmt: skip
        print(f"kprobe-docs: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = interrupt.signum_of(exc)
        name = signal.Signals(signum).name
        print(f"kprobe-docs: stopped by {name}; finished targets are saved in the results file", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:  # the reader went away (``| head``): nothing more to say to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
