"""Verification: extracted samples x targets -> results records.

Per target: prepare (or reuse) the release's build environment, build every
sample the target is claimed for, boot the target's kernel once with all the
built modules, judge each sample and record it.  The results file is rewritten
atomically after each target, so an interrupted run keeps what it finished.
"""

from __future__ import annotations

import os
import platform
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from ..build import environment as buildenv
from ..build.builder import BuildResult, build_sample, remove_build_dir
from ..build.environment import BuildEnv, Kernel
from ..interrupt import CANCEL
from ..judge.check import evaluate, output, taint_flags
from ..paths import kmod_dir
from ..sources.claims import BUILD
from ..sources.expectations import Context
from ..sources.extract import rendered_files
from ..sources.sample import Sample
from ..sources.targets import Catalog, Target, find_mirror, system_sources
from ..store import results
from ..store.results import ApiProbe, BccFacts, Record, RunInfo, TargetFacts, Verdict
from . import guestroot, qemu
from .guestroot import versions
from .initramfs import ModulesTree, make_bcc_initramfs, make_initramfs
from .markers import BootLog, SampleRun

Progress = Callable[[str], None]

# A target's boots, each named after its guest, with the kinds of sample it runs: modules and tracefs scripts
# need only busybox, so they share the initramfs boot; bcc and bpftrace twins need the release's root.
BOOTS = {"kmod": ("kmod", "tracefs"), "bcc": ("bcc", "bpftrace", "perf")}
MAIN_COMPILE_SECONDS = 180.0  # the most one twin's own compile may take under TCG, in bcc mode "main"

# Kernel config options recorded per target and shown by the configuring page.
CONFIG_SHOWN = (
    "CONFIG_KPROBES",
    "CONFIG_KRETPROBES",
    "CONFIG_KRETPROBE_ON_RETHOOK",
    "CONFIG_OPTPROBES",
    "CONFIG_KPROBES_ON_FTRACE",
    "CONFIG_KPROBE_EVENTS",
    "CONFIG_HIST_TRIGGERS",
    "CONFIG_FPROBE",
    "CONFIG_MODULES",
    "CONFIG_MODULE_UNLOAD",
    "CONFIG_MODULE_SIG",
    "CONFIG_MODULE_SIG_FORCE",
    "CONFIG_KALLSYMS",
    "CONFIG_KALLSYMS_ALL",
    "CONFIG_DEBUG_INFO",
    "CONFIG_DEBUG_INFO_BTF",
    "CONFIG_DEBUG_FS",
    "CONFIG_DYNAMIC_FTRACE_WITH_REGS",
    "CONFIG_PREEMPTION",
    "CONFIG_PREEMPT_DYNAMIC",
    "CONFIG_PREEMPT_RT",
    "CONFIG_IKCONFIG_PROC",
    "CONFIG_X86_KERNEL_IBT",
)


@dataclass(frozen=True)
class Job:
    """What to verify and where the outputs go."""

    samples: list[tuple[Sample, Path]]  # each with its extracted directory
    targets: list[Target]
    catalog: Catalog
    build_dir: Path
    results_file: Path
    jobs: int = 1  # targets verified at once
    previous: results.Newest | None = None  # reuse its records where nothing changed; None: redo all


def run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{os.getpid()}"


def environment_for(target: Target, catalog: Catalog, progress: Progress) -> BuildEnv:
    """The target's release environment, made for every catalog target of that release."""
    return buildenv.prepare(catalog.siblings(target), find_mirror(system_sources()), progress)


def record_of(sample: Sample, target: Target, verdict: Verdict, **fields: object) -> Record:
    return Record(
        sample=sample.name,
        target=target.name,
        kind=sample.kind,
        page=sample.page,
        source_hash=sample.source_hash(),
        verdict=verdict,
        **fields,  # type: ignore[arg-type]
    )


def provenance_of(kernel: Kernel, target: Target, accel: str) -> dict[str, str]:
    return {
        "kernel_package": kernel.package,
        "kernel_version": kernel.version,
        "kernel_release": kernel.release,
        "kernel_sha256": kernel.sha256,
        "qemu": qemu.qemu_version(target.arch) if accel else "",
        "accelerator": accel,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "harness": results.harness_hash(),
        "host": platform.node(),
    }


def _build_record(sample: Sample, target: Target, built: BuildResult, provenance: dict[str, str]) -> Record:
    return record_of(
        sample,
        target,
        "pass" if built.status == "expected-failure" else "fail",
        reason=f"build {built.status}: {built.problem}",
        build=_build_fields(built),
        named={BUILD: built.problem} if built.status == "expected-failure" else {},
        seconds={"build": built.seconds},
        provenance=provenance,
    )


def _build_fields(built: BuildResult) -> dict[str, object]:
    return {"status": built.status, "seconds": built.seconds, "log": built.log, "problem": built.problem}


def run_record(
    sample: Sample,
    target: Target,
    built: BuildResult,
    run: SampleRun,
    provenance: dict[str, str],
    console_log: Path,
    context: Context,
) -> Record:
    verdict = evaluate(run, sample, context)
    taint = int(run.events.get("taint", "0") or 0)
    return record_of(
        sample,
        target,
        verdict.verdict,
        reason=verdict.reason,
        build=_build_fields(built),
        load=verdict.load,
        checks=verdict.checks,
        matched=verdict.matched,
        named=verdict.named,
        log=output(run, sample.kind),
        log2=run.sections.get("log2" if sample.kind == "kmod" else "dmesg", []),
        kprobes=run.sections.get("kprobes", []),
        trigger=run.sections.get("trigger", []),
        console=[] if run.outcome == "completed" else run.console,
        console_log=str(console_log),
        events=run.events,
        taint=taint_flags(taint),
        seconds={"build": built.seconds, "run": run.seconds},
        provenance=provenance,
    )


def _kvm_probe(target: Target, kernel: Kernel, out: Path) -> Callable[[str], bool]:
    def probe(accel: str) -> bool:
        initrd = out / "probe.cpio"
        make_initramfs(Path(kernel.busybox), [], initrd)
        argv = qemu.command(target.arch, accel, kernel.vmlinuz, initrd, 0)
        log = BootLog()
        follower = qemu.boot_once(argv, {}, log, out / "kvm-probe.log", qemu.KVM_PROBE_TIMEOUT)
        return follower.finished

    return probe


def boot(
    target: Target,
    env: BuildEnv,
    plan: list[tuple[Sample, BuildResult]],
    out: Path,
    progress: Progress,
    bcc_mode: str = "shared",
) -> tuple[BootLog, str]:
    """One boot (more after a crash) running ``plan``: modules with busybox, or bcc twins in the release's root.

    ``bcc_mode``: how the bcc twins run (``initramfs.BCC_MODES``).
    """
    kernel = env.kernels[target.name]
    kind = guest_of(plan)
    initrd = out / f"initramfs-{kind}.cpio"
    extra: tuple[str, ...] = ()
    if kind == "bcc":
        if not kernel.modules:
            raise guestroot.GuestRootError(
                f"no modules tree for {kernel.release} in {kernel.package} or linux-modules-/linux-base-"
                f"{kernel.release} (see prepare.log of the build environment): 9p cannot be loaded"
            )
        make_bcc_initramfs(Path(kernel.busybox), Path(kernel.modules), [s for s, _ in plan], initrd, bcc_mode)
        extra = tuple(guestroot.qemu_options(env.root))
    else:
        tree = ModulesTree(Path(kernel.modules), kernel.release) if kernel.modules else None
        make_initramfs(Path(kernel.busybox), [(s, Path(b.artifact)) for s, b in plan], initrd, tree)
    accel = qemu.accelerator(target.arch, _kvm_probe(target, kernel, out))
    what = "bcc, bpftrace and perf programs in the release's root" if kind == "bcc" else "modules and tracefs scripts"
    progress(f"{target.name}: booting {kernel.release} under QEMU ({accel}) with {len(plan)} {what}")
    names = [s.name for s, _ in plan]
    # Run through its own main(), a twin compiles its BPF text before the clock of its sample could mean anything.
    compile_time = MAIN_COMPILE_SECONDS if bcc_mode == "main" else 0.0
    timeouts = {s.name: float(s.timeout) + compile_time for s, _ in plan}
    log = qemu.run_plan(
        lambda start: qemu.command(target.arch, accel, kernel.vmlinuz, initrd, start, extra),
        names,
        timeouts,
        out / f"console-{kind}.log",
        progress,
    )
    return log, accel


def guest_of(plan: list[tuple[Sample, BuildResult]]) -> str:
    """The boot that runs ``plan``, whose samples are all of that boot's kinds."""
    return next(guest for guest, kinds in BOOTS.items() if plan[0][0].kind in kinds)


def _not_run(log: BootLog, name: str) -> SampleRun:
    """A sample the boot never reached: its run carries why and the boot's last console lines."""
    return SampleRun(name, console=[log.failure, *log.tail], outcome="unbooted")


def build_all(
    env: BuildEnv, kernel: Kernel, samples: list[tuple[Sample, Path]], out: Path, progress: Progress
) -> list[tuple[Sample, BuildResult]]:
    """Build the samples, as many at once as there are cores, in their given order."""

    def one(item: tuple[Sample, Path]) -> tuple[Sample, BuildResult]:
        sample, directory = item
        built = build_sample(env, kernel, directory, sample, out / sample.name)
        progress(f"{kernel.target}: built {sample.name}: {built.status} ({built.seconds:.1f} s)")
        return sample, built

    try:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            return list(pool.map(one, samples))
    finally:
        remove_build_dir(env, kernel)


def build_stage(
    job: Job, target: Target, env: BuildEnv, out: Path, provenance: dict[str, str], progress: Progress
) -> tuple[list[Record], list[tuple[Sample, BuildResult]]]:
    """Records for samples not claimed or not built, and the plan of built modules to boot."""
    kernel = env.kernels[target.name]
    claimed = [(s, d) for s, d in job.samples if s.claims(target.arch, kernel.upstream)]
    names = {s.name for s, _ in claimed}
    records = [
        record_of(s, target, "not-claimed", provenance=provenance) for s, _ in job.samples if s.name not in names
    ]
    reused = [r for r in (_reusable(job, s, target, kernel) for s, _ in claimed) if r is not None]
    records += reused
    if reused:
        progress(f"{target.name}: reusing {len(reused)} unchanged result(s) (--force redoes them)")
    claimed = [(s, d) for s, d in claimed if s.name not in {r.sample for r in reused}]
    plan: list[tuple[Sample, BuildResult]] = []
    for sample, built in build_all(env, kernel, claimed, out, progress):
        if built.status == "ok":
            plan.append((sample, built))
        else:
            records.append(_build_record(sample, target, built, provenance))
    return records, plan


def _reusable(job: Job, sample: Sample, target: Target, kernel: Kernel) -> Record | None:
    """The previous record of (sample, target) if its source, kernel and harness are unchanged."""
    old = job.previous.records.get((sample.name, target.name)) if job.previous else None
    if old is None or old.verdict != "pass" or old.source_hash != sample.source_hash():  # failures are redone
        return None
    if old.provenance.get("kernel_sha256") != kernel.sha256 or old.provenance.get("harness") != results.harness_hash():
        return None
    return replace(old, reused_from=old.reused_from or old.provenance.get("date", "?"))


def _api_probe(source: Path, scratch: Path) -> tuple[Sample, Path]:
    """A compile probe of kmod/api/ as a build-only sample named ``api_<stem>``."""
    sample = Sample(name=f"api_{source.stem}", kind="kmod", code=source.read_text(), expect=("built",))
    directory = scratch / sample.name
    directory.mkdir(parents=True, exist_ok=True)
    for filename, text in rendered_files(sample).items():
        (directory / filename).write_text(text)
    return sample, directory


def api_availability(env: BuildEnv, kernel: Kernel, out: Path, progress: Progress) -> dict[str, ApiProbe]:
    """Which kprobes-related APIs a module can use on this kernel: each probe of kmod/api/ builds or not."""
    probes = [_api_probe(source, out / "api-src") for source in sorted((kmod_dir() / "api").glob("*.c"))]
    found: dict[str, ApiProbe] = {}
    for sample, built in build_all(env, kernel, probes, out / "api", lambda _: None):
        summary = sample.code.splitlines()[1].removeprefix("/* API probe: ").removesuffix(" */")
        log = Path(built.log).read_text()
        found[sample.name.removeprefix("api_")] = {
            "available": built.status == "ok",
            "what": summary,
            "problem": built.problem,
            "log": log[-6000:],
        }
    progress(f"{kernel.target}: API probes: {sum(bool(f['available']) for f in found.values())} of {len(found)} build")
    return found


# The facts a fresh run records for every target; older runs may lack newer ones.
FACT_KEYS = ("release", "arch", "flavour", "provenance", "config", "debugfs", "boot_seconds", "api", "bcc")


@dataclass
class TargetRun:
    records: list[Record]
    facts: TargetFacts  # empty when the target could not be prepared


def _facts(
    target: Target,
    kernel: Kernel,
    provenance: dict[str, str],
    log: BootLog | None,
    bcc_log: BootLog | None,
    api: dict[str, ApiProbe],
    root: Path,
) -> TargetFacts:
    return {
        "release": target.release,
        "arch": target.arch,
        "flavour": target.flavour,
        "provenance": provenance,
        "config": kernel.config_values(CONFIG_SHOWN),
        "debugfs": log.facts if log else {},
        "boot_seconds": log.boot_seconds if log else [],
        "api": api,
        "bcc": _bcc_facts(bcc_log, root),
    }


def _reused_facts(job: Job, target: Target, records: list[Record]) -> TargetFacts | None:
    """The previous run's facts of ``target`` when every record of this run was carried over."""
    if job.previous is None or target.name not in job.previous.targets:
        return None
    if any(not r.reused_from and r.verdict != "not-claimed" for r in records):
        return None
    facts = job.previous.targets[target.name]
    return facts if all(key in facts for key in FACT_KEYS) else None


def _boot_records(
    target: Target,
    env: BuildEnv,
    plan: list[tuple[Sample, BuildResult]],
    out: Path,
    provenance: dict[str, str],
    progress: Progress,
) -> tuple[list[Record], BootLog]:
    """Boot ``plan`` (samples of one boot's kinds) and judge each sample."""
    try:
        log, accel = boot(target, env, plan, out, progress)
    except guestroot.GuestRootError as exc:  # this kind's guest cannot be made; the target's other samples go on
        progress(f"{target.name}: {exc}")
        reason = f"the {guest_of(plan)} guest cannot be made: {exc}"
        fields = {"reason": reason, "provenance": provenance}
        return [record_of(s, target, "error", build=_build_fields(b), **fields) for s, b in plan], BootLog()
    provenance = {**provenance, **provenance_of(env.kernels[target.name], target, accel)}
    if guest_of(plan) == "bcc":  # a twin's verdict belongs to the bcc and LLVM that ran it
        provenance.update(versions(env.root))
    runs = {r.name: r for r in log.runs}
    records = []
    console_log = out / f"console-{guest_of(plan)}.log"
    context = env.kernels[target.name].context()
    for sample, built in plan:
        run = runs.get(sample.name) or _not_run(log, sample.name)
        records.append(run_record(sample, target, built, run, provenance, console_log, context))
    progress(f"{target.name}: {guest_of(plan)}: {len(log.boot_seconds)} boot(s), {log.seconds:.1f} s")
    return records, log


def _bcc_facts(log: BootLog | None, root: Path) -> BccFacts:
    """What a bcc boot costs and ran with: seconds to the agent, the runner's words, the packages' versions."""
    if log is None or not log.boot_seconds:
        return {}
    said = [line for line in log.facts.get("bcc-runner", []) if line.startswith(("python ", "compiled "))]
    return {"boot_seconds": log.boot_seconds, "seconds": log.seconds, "runner": said, "versions": versions(root)}


def verify_target(job: Job, target: Target, progress: Progress) -> TargetRun:
    env = environment_for(target, job.catalog, progress)
    kernel = env.kernels[target.name]
    out = job.build_dir / target.name
    out.mkdir(parents=True, exist_ok=True)
    provenance = provenance_of(kernel, target, "")
    records, plan = build_stage(job, target, env, out, provenance, progress)
    logs: dict[str, BootLog] = {}
    for guest, kinds in BOOTS.items():
        part = [(s, b) for s, b in plan if s.kind in kinds]
        if part:
            done, logs[guest] = _boot_records(target, env, part, out, provenance, progress)
            records += done
    order = {s.name: i for i, (s, _) in enumerate(job.samples)}
    records.sort(key=lambda r: order[r.sample])
    facts = _reused_facts(job, target, records)
    if facts is None:
        fresh = [r for r in records if not r.reused_from and r.provenance.get("accelerator")]
        provenance = fresh[0].provenance if fresh else provenance
        api = api_availability(env, kernel, out, progress)
        facts = _facts(target, kernel, provenance, logs.get("kmod"), logs.get("bcc"), api, env.root)
    return TargetRun(records, facts)


class Recorder:
    """Collects a run's targets and rewrites its results file atomically after each.

    A results file that cannot be written (a full disk, a directory made
    read-only meanwhile) does not lose the run: it goes to a fallback path,
    and the run says where.
    """

    def __init__(self, path: Path, progress: Progress) -> None:
        self.path = path
        self.progress = progress
        self.run: RunInfo = {"id": path.stem, "started": datetime.now(UTC).isoformat(timespec="seconds")}
        self.records: list[Record] = []
        self.targets: dict[str, TargetFacts] = {}
        self.lock = threading.Lock()

    @classmethod
    def resume(cls, path: Path, progress: Progress) -> Recorder:
        """A recorder that goes on with the run of an existing results file, keeping what it holds."""
        recorder = cls(path, progress)
        if path.exists():
            found = results.load_file(path)
            recorder.records, recorder.targets = found.records, found.targets
            recorder.run = found.run or recorder.run
        return recorder

    def add(self, target: Target, done: TargetRun) -> None:
        with self.lock:
            replaced = {r.key for r in done.records}  # a host run records its samples one by one
            self.records = [r for r in self.records if r.key not in replaced] + done.records
            self.targets[target.name] = done.facts
            self.run["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
            try:
                results.save(self.path, self.run, self.records, self.targets)
            except OSError as exc:
                fallback = results.fallback_path(self.path)
                self.progress(f"cannot write {self.path} ({exc.strerror}): this run's results go to {fallback}")
                self.path = fallback
                results.save(self.path, self.run, self.records, self.targets)


def _run_targets(job: Job, one: Callable[[Target], None]) -> None:
    """``one`` for every target, ``job.jobs`` at a time; an interrupt stops the workers at their next check."""
    if job.jobs <= 1:
        for target in job.targets:
            one(target)
        return
    with ThreadPoolExecutor(max_workers=job.jobs) as pool:
        futures = [pool.submit(one, target) for target in job.targets]
        try:
            for future in futures:
                future.result()
        except KeyboardInterrupt:
            CANCEL.set()  # each worker ends its guest or child within a second or two
            pool.shutdown(wait=True, cancel_futures=True)  # and queued targets never start
            raise


@dataclass
class Verified:
    records: list[Record]  # in the targets' order
    path: Path  # where the results file was written: ``job.results_file``, or a fallback the run named


def verify(job: Job, progress: Progress) -> Verified:
    """Verify every target, ``job.jobs`` at a time."""
    results.check_writable(job.results_file.parent)
    recorder = Recorder(job.results_file, progress)

    def one(target: Target) -> None:
        try:
            done = verify_target(job, target, progress)
        except buildenv.BuildEnvError as exc:  # the other targets go on; this one's samples say why
            progress(f"{target.name}: {exc}")
            reason = f"target not prepared: {exc}"
            done = TargetRun([record_of(s, target, "error", reason=reason) for s, _ in job.samples], {})
        if not CANCEL.is_set():  # what an interrupt cut short is no result
            recorder.add(target, done)

    _run_targets(job, one)
    order = {t.name: i for i, t in enumerate(job.targets)}
    return Verified(sorted(recorder.records, key=lambda r: order[r.target]), recorder.path)
