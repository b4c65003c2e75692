"""Host runner: the samples on the running kernel of this machine, a real test machine.

The per-sample steps are the guests' own (``agent_lib.sh``, run here by
``agent_host.sh``), their markers are followed by the same ``Follower`` and
judged by the same ``check``, and the records go to the same results format,
with the machine's provenance.  So a host verdict and a QEMU verdict cannot
disagree on the same markers.

A real machine is not a throwaway guest:

- it runs as root only, and only when asked (``--target host``: never part of
  ``all``);
- it refuses, saying why, a kernel without kprobes, a kernel that loads only
  signed modules when no signing key is given, a machine where a module of
  ours is already loaded, and a kernel already tainted by damage;
- after each sample it checks that nothing of ours is left (module, kprobe,
  kprobe event, new taint) and stops the run if something is;
- before each step it appends an entry to a journal under the results
  directory (fsynced), so that after a crash and a reboot ``--resume``
  records the sample in flight as crashed, with the previous boot's kernel
  log where the machine kept one, and goes on with the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from .. import interrupt
from ..build.builder import BuildResult, build_on_host
from ..judge.check import BAD_TAINT, evaluate, output, taint_flags
from ..sources.claims import BUILD
from ..sources.expectations import Context
from ..sources.sample import KINDS, Sample
from ..sources.targets import Target
from ..store import results
from ..store.results import Record, TargetFacts
from .guestroot import versions
from .guests import CONFIG_SHOWN, Recorder, TargetRun, Verified
from .markers import GAP_TIMEOUT, BootLog, Follower, SampleRun, follow

Progress = Callable[[str], None]
KPROBES = Path("/sys/kernel/debug/kprobes")
JOURNAL = "host-journal.jsonl"
SYSTEM_PYTHON = "/usr/bin/python3"  # the one Debian's python3-bpfcc installs bcc for
SAFE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# Taint bits that loading any module of ours sets by itself: O (out of tree), E (unsigned).
OURS_TAINT = (1 << 12) | (1 << 13)
# Debian architecture names of uname's machine names, where they differ.
DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "i386", "ppc64le": "ppc64el", "riscv64": "riscv64"}


class HostError(RuntimeError):
    """This machine cannot be verified as it is; the message says why and what to do."""


@dataclass(frozen=True)
class Signing:
    key: Path
    cert: Path


@dataclass(frozen=True)
class Machine:
    """The machine and its running kernel, as the host runner sees them."""

    name: str  # the target name: host-<os id>-<codename>-<arch>, e.g. host-debian-bookworm-amd64
    release: str  # uname -r
    arch: str  # Debian's name for it
    version: tuple[int, int]
    headers: Path
    provenance: dict[str, str] = field(default_factory=dict)

    @property
    def context(self) -> Context:
        """What conditional expectations ask of this machine: arch, version, configuration."""
        config = re.findall(r"^(CONFIG_\w+)=(.*)$", _config_text(self.release), re.MULTILINE)
        return Context(self.arch, self.version, {option: value.strip('"') for option, value in config})

    @property
    def target(self) -> Target:
        codename = self.name.split("-")[2] if self.name.count("-") >= 3 else "unknown"
        return Target(name=self.name, release=codename, suites=(), arch=self.arch, flavour="host")


def _read(path: str | Path, default: str = "") -> str:
    try:
        return Path(path).read_text(errors="replace").strip()
    except OSError:
        return default


def _run(argv: list[str]) -> str:
    """A command's output, or "" when it is missing or fails."""
    try:
        proc = interrupt.run(argv, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def os_release() -> dict[str, str]:
    text = _read("/etc/os-release") or _read("/usr/lib/os-release")
    found = dict(re.findall(r'^([A-Z_]+)="?(.*?)"?$', text, re.MULTILINE))
    return found


def machine_name(release: dict[str, str], arch: str) -> str:
    codename = release.get("VERSION_CODENAME") or release.get("VERSION_ID") or "unknown"
    name = f"host-{release.get('ID', 'linux')}-{codename}-{arch}"
    return re.sub(r"[^A-Za-z0-9._+-]", "-", name)


def _arch() -> str:
    return _run(["dpkg", "--print-architecture"]) or DEBIAN_ARCH.get(platform.machine(), platform.machine())


def _kernel_package(release: str) -> tuple[str, str]:
    """The Debian package holding the running kernel's image, and its version ("" when not from a package)."""
    for image in (f"/boot/vmlinuz-{release}", f"/usr/lib/modules/{release}/vmlinuz", f"/lib/modules/{release}/vmlinuz"):
        owner = _run(["dpkg-query", "-S", image])
        if owner:
            package = owner.split(":", 1)[0].strip()
            return package, _run(["dpkg-query", "-W", "-f=${Version}", package])
    return "", ""


def _config_text(release: str) -> str:
    text = _read(f"/boot/config-{release}")
    if text:
        return text
    return _run(["sh", "-c", "zcat /proc/config.gz"])


def _secure_boot() -> str:
    said = _run(["mokutil", "--sb-state"])
    if said:
        return said.splitlines()[0]
    variables = list(Path("/sys/firmware/efi/efivars").glob("SecureBoot-*"))
    if not variables:
        return "no EFI (not booted with UEFI)"
    data = variables[0].read_bytes()
    return "SecureBoot enabled" if data[-1:] == b"\x01" else "SecureBoot disabled"


def _lockdown() -> str:
    text = _read("/sys/kernel/security/lockdown")
    found = re.search(r"\[(\w+)\]", text)
    return found[1] if found else "not available"


def _cpu() -> str:
    found = re.search(r"^(?:model name|Model|cpu model)\s*:\s*(.+)$", _read("/proc/cpuinfo"), re.MULTILINE)
    return found[1].strip() if found else platform.processor() or "?"


def _virtualization() -> str:
    kind = _run(["systemd-detect-virt"]) or "none"
    return "hardware" if kind == "none" else f"virtual machine ({kind})"


def taint() -> int:
    return int(_read("/proc/sys/kernel/tainted", "0") or 0)


def inspect() -> Machine:
    """What this machine is: its name, running kernel, headers and provenance."""
    release = platform.release()
    found = re.match(r"(\d+)\.(\d+)", release)
    version = (int(found[1]), int(found[2])) if found else (0, 0)
    arch = _arch()
    osr = os_release()
    package, package_version = _kernel_package(release)
    provenance = {
        "runner": "host",
        "machine": platform.node(),
        "machine_kind": _virtualization(),
        "dmi_vendor": _read("/sys/class/dmi/id/sys_vendor", "?"),
        "dmi_product": _read("/sys/class/dmi/id/product_name", "?"),
        "cpu": _cpu(),
        "os": osr.get("PRETTY_NAME", "?"),
        "kernel_release": release,
        "kernel_package": package or f"(not from a package) {release}",
        "kernel_version": package_version,
        "kernel_config_sha256": hashlib.sha256(_config_text(release).encode()).hexdigest()[:16],
        "secure_boot": _secure_boot(),
        "lockdown": _lockdown(),
        "sig_enforce": _read("/sys/module/module/parameters/sig_enforce", "?"),
        "taint_before": taint_flags(taint()) or "none",
    }
    headers = Path(f"/lib/modules/{release}/build")
    return Machine(machine_name(osr, arch), release, arch, version, headers, provenance)


def _mount_debugfs(progress: Progress) -> None:
    if not KPROBES.parent.joinpath("kprobes").exists() and not _run(["mountpoint", "-q", str(KPROBES.parent)]):
        proc = interrupt.run(["mount", "-t", "debugfs", "debugfs", str(KPROBES.parent)])
        if proc.returncode == 0:
            progress(f"mounted debugfs on {KPROBES.parent}")


def signing_required(machine: Machine) -> str:
    """Why this kernel loads only signed modules, or "" when it loads any."""
    reasons = []
    if machine.provenance.get("sig_enforce") == "Y":
        reasons.append("module.sig_enforce is on")
    if machine.provenance.get("lockdown") in ("integrity", "confidentiality"):
        reasons.append(f"the kernel is locked down ({machine.provenance['lockdown']})")
    if "enabled" in machine.provenance.get("secure_boot", "") and reasons:
        reasons.append("Secure Boot is on")
    return " and ".join(reasons)


def problems(machine: Machine, samples: list[Sample], signing: Signing | None) -> list[str]:
    """Why this machine cannot be verified now: every reason at once, each with what to do."""
    found = []
    if os.geteuid() != 0:
        found.append("the host target loads kernel modules: run it as root")
    if not (KPROBES / "list").exists():
        found.append(f"{KPROBES}/list is missing: this kernel has no kprobes (CONFIG_KPROBES) or debugfs is off")
    elif _read(KPROBES / "enabled") != "1":
        found.append(f"kprobes are disabled ({KPROBES}/enabled is 0): echo 1 > {KPROBES}/enabled")
    if not (machine.headers / "Makefile").exists():
        found.append(
            f"no headers for the running kernel in {machine.headers}: apt-get install linux-headers-{machine.release}"
        )
    why_signed = signing_required(machine)
    if why_signed and signing is None:
        found.append(
            f"this kernel loads only signed modules ({why_signed}): enroll a key with "
            "'mokutil --import cert.der', reboot to confirm it, then give it with --sign-key KEY --sign-cert CERT"
        )
    loaded = _read("/proc/modules").split("\n")
    ours = sorted({line.split()[0] for line in loaded if line} & {s.name for s in samples})
    if ours:
        found.append(f"a module of ours is already loaded: {', '.join(ours)}; rmmod it first")
    damage = taint() & sum(1 << bit for bit in BAD_TAINT)
    if damage:
        letters = taint_flags(damage)
        found.append(
            f"the kernel is already tainted {letters} (damage since boot): verdicts would mean nothing; reboot"
        )
    return found


# ---------------------------------------------------------------------------------------------- the journal


class Journal:
    """Append-only, fsynced: what the run did, step by step, so a crashed run can be resumed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, **entry: object) -> None:
        line = json.dumps({"time": datetime.now(UTC).isoformat(timespec="seconds"), **entry}) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def entries(self) -> list[dict[str, object]]:
        found = []
        for line in _read(self.path).splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:  # a line cut by the crash
                continue
        return found


@dataclass
class Unfinished:
    """What a crashed run left: its results file, the samples done, and the one in flight."""

    results_file: Path
    plan: list[str]
    done: list[str]
    in_flight: str


def unfinished(journal: Journal) -> Unfinished | None:
    entries = journal.entries()
    starts = [i for i, e in enumerate(entries) if e.get("event") == "start"]
    if not starts or any(e.get("event") == "finish" for e in entries[starts[-1] :]):
        return None
    run = entries[starts[-1] :]
    done = [str(e["sample"]) for e in run if e.get("event") == "done"]
    begun = [str(e["sample"]) for e in run if e.get("event") == "begin"]
    flight = next((name for name in reversed(begun) if name not in done), "")
    listed = run[0].get("plan", [])
    plan = [str(name) for name in listed] if isinstance(listed, list) else []
    return Unfinished(Path(str(run[0]["results_file"])), plan, done, flight)


def _pstore_dmesg() -> list[str]:
    """The kernel log the kernel saved as it died, newest crash first: systemd-pstore's dmesg.txt, else pstore."""
    saved = sorted(Path("/var/lib/systemd/pstore").glob("*/dmesg.txt"), key=lambda p: p.stat().st_mtime)
    if saved:
        return saved[-1].read_text(errors="replace").splitlines()
    raw = sorted(Path("/sys/fs/pstore").glob("dmesg-*"), key=lambda p: p.stat().st_mtime)
    return raw[-1].read_text(errors="replace").splitlines() if raw else []


def previous_boot_log() -> list[str]:
    """The kernel log of the boot before this one, where the machine kept it.

    What the kernel wrote to pstore as it died comes first (a journal
    rarely holds a panic's last lines), then what the journal kept.
    """
    dying = _pstore_dmesg()
    journal = _run(["journalctl", "-k", "-b", "-1", "--no-pager", "-o", "short-monotonic"]).splitlines()
    found = [*(["# saved by the kernel as it died (pstore):"] if dying else []), *dying[-150:]]
    found += [*(["# the journal of the previous boot:"] if journal else []), *journal[-50:]]
    return found or ["(the machine kept no kernel log of the previous boot: no pstore record, no persistent journal)"]


# ------------------------------------------------------------------------------------------ running samples


@dataclass
class Plan:
    """A host run: what to verify and where things go."""

    samples: list[tuple[Sample, Path]]
    results_file: Path
    work: Path  # build outputs and logs
    signing: Signing | None = None
    resume: bool = False


def _packaged(name: str) -> bytes:
    return resources.files("kprobe_docs.runners").joinpath(name).read_bytes()


def _stage(directory: Path, sample: Sample, built: BuildResult) -> None:
    """The files the agent reads for a sample, under ``directory/<name>/``, as a guest's initramfs holds them."""
    place = directory / sample.name
    place.mkdir(parents=True, exist_ok=True)
    (place / "trigger").write_text(sample.trigger + "\n")
    if sample.kind == "kmod":
        shutil.copy(built.artifact, place / f"{sample.name}.ko")
        (place / "params").write_text(" ".join(sample.params) + "\n")
    else:
        shutil.copy(built.artifact, place / sample.filename)


def sign(machine: Machine, signing: Signing, module: Path) -> None:
    tool = machine.headers / "scripts" / "sign-file"
    proc = interrupt.run([str(tool), "sha256", str(signing.key), str(signing.cert), str(module)])
    if proc.returncode != 0:
        raise HostError(f"{tool} could not sign {module.name}: {(proc.stderr or proc.stdout).strip()[-400:]}")


def _gained_taint(before: int, after: int) -> str:
    """Taint flags the sample added, besides those any module of ours sets (O, E)."""
    new = (after & ~before) & ~OURS_TAINT
    return taint_flags(new)


def _record(sample: Sample, machine: Machine, verdict: results.Verdict, **fields: object) -> Record:
    provenance = {
        **machine.provenance,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "harness": results.harness_hash(),
        "host": platform.node(),
    }
    return Record(
        sample=sample.name,
        target=machine.name,
        kind=sample.kind,
        page=sample.page,
        source_hash=sample.source_hash(),
        verdict=verdict,
        provenance=provenance,
        **fields,  # type: ignore[arg-type]
    )


def _judged(sample: Sample, machine: Machine, built: BuildResult, run: SampleRun, console: Path) -> Record:
    verdict = evaluate(run, sample, machine.context)
    return _record(
        sample,
        machine,
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
        console_log=str(console),
        events=run.events,
        taint=taint_flags(int(run.events.get("taint", "0") or 0)),
        seconds={"build": built.seconds, "run": run.seconds},
    )


def _build_fields(built: BuildResult) -> results.Build:
    return {"status": built.status, "seconds": built.seconds, "log": built.log, "problem": built.problem}  # type: ignore[typeddict-item]


def target_facts(machine: Machine, bcc: results.BccFacts) -> TargetFacts:
    config = dict(re.findall(r"^(CONFIG_\w+)=(.*)$", _config_text(machine.release), re.MULTILINE))
    blacklist = _read(KPROBES / "blacklist").splitlines()
    return {
        "release": machine.target.release,
        "arch": machine.arch,
        "flavour": "host",
        "provenance": {**machine.provenance, "taint_after": taint_flags(taint()) or "none"},
        "config": {option: config.get(option, "n").strip('"') for option in CONFIG_SHOWN},
        "debugfs": {
            "enabled": [_read(KPROBES / "enabled")],
            "blacklist-entries": [str(len(blacklist))],
            "blacklist-head": blacklist[:5],
            "kprobes-optimization": [_read("/proc/sys/debug/kprobes-optimization")],
        },
        "boot_seconds": [],
        "api": {},
        "bcc": bcc,
    }


def bcc_missing() -> str:
    """Why the bcc twins cannot run here, with the apt line; "" when they can."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} is missing: apt-get install python3-bpfcc"
    if interrupt.run([SYSTEM_PYTHON, "-c", "import bcc"]).returncode != 0:
        return f"{SYSTEM_PYTHON} cannot import bcc: apt-get install python3-bpfcc"
    return ""


# The program each kind of twin runs with, and the package that holds it.
TWIN_PROGRAMS = {"bpftrace": ("bpftrace", "bpftrace"), "perf": ("perf", "linux-perf")}


def _twins_missing(kind: str) -> str:
    """Why the ``kind`` twins (bcc, bpftrace, perf) cannot run here, with the apt line; "" when they can."""
    if kind == "bcc":
        return bcc_missing()
    program, package = TWIN_PROGRAMS[kind]
    return "" if shutil.which(program, path=SAFE_PATH) else f"{program} is not installed: apt-get install {package}"


class Stopped(Exception):
    """The run stops early on purpose: something of ours is left in the kernel, or a sample hung."""


@dataclass
class HostRun:
    """One host run in progress."""

    machine: Machine
    plan: Plan
    stage: Path  # lib.sh, agent_host.sh and each sample's files, as the agent reads them
    journal: Journal
    recorder: Recorder
    progress: Progress
    bcc: results.BccFacts = field(default_factory=lambda: results.BccFacts())

    def save(self, records: list[Record]) -> None:
        self.recorder.add(self.machine.target, TargetRun(records, target_facts(self.machine, self.bcc)))

    def one(self, sample: Sample, index: int, built: BuildResult, extra: list[str]) -> Record:
        """Run one built sample through the agent, judge it, and check what it left behind."""
        self.journal.add(event="begin", sample=sample.name)
        before = taint()
        console = self.plan.work / f"agent-{sample.name}.log"
        console.write_text("")
        argv = [sample.kind, "", sample.name, str(index), *extra]
        run = _agent(self.stage, argv, float(sample.timeout), console)
        record = _judged(sample, self.machine, built, run, console)
        gained = _gained_taint(before, taint())
        if gained and record.verdict == "pass":
            record.verdict, record.checks, record.reason = "fail", "failed", f"leftover: kernel taint gained {gained}"
        self.journal.add(event="done", sample=sample.name, verdict=record.verdict)
        self.save([record])
        self.progress(
            f"{self.machine.name}: {sample.name}: {record.verdict}{': ' + record.reason if record.reason else ''}"
        )
        if run.outcome == "hung" or run.sections.get("leftover") or gained:
            raise Stopped(f"{sample.name}: {record.reason}")
        return record


def _agent(stage: Path, argv: list[str], timeout: float, console: Path) -> SampleRun:
    """One sample through agent_host.sh, followed with the deadlines a guest gets."""
    log = BootLog()
    name = argv[2]
    follower = Follower({name: timeout}, log, GAP_TIMEOUT)
    argv = [argv[0], str(stage), *argv[2:]]
    # A clean environment, as in a guest: with LANG set, every program looks up locale files, failed opens a
    # sample that watches failed opens would report.
    follow(["env", "-i", f"PATH={SAFE_PATH}", "sh", str(stage / "agent_host.sh"), *argv], follower, console)
    found = [r for r in log.runs if r.name == name]
    return found[0] if found else SampleRun(name, console=follower.last, outcome="hung")


def _start(plan: Plan, machine: Machine, journal: Journal, progress: Progress) -> tuple[Recorder, list[str], str]:
    """A new run, or with ``--resume`` the crashed one continued: its recorder, the samples done, the one in flight."""
    if not plan.resume:
        left = unfinished(journal)
        if left is not None:
            raise HostError(
                f"a run on this machine did not finish (crashed while running {left.in_flight or 'its builds'}?): "
                f"give --resume to record that and go on, or remove {journal.path} to start afresh"
            )
        journal.add(event="start", results_file=str(plan.results_file), plan=[s.name for s, _ in plan.samples])
        return Recorder(plan.results_file, progress), [], ""
    left = unfinished(journal)
    if left is None:
        raise HostError(f"nothing to resume: {journal.path} holds no unfinished run")
    progress(f"resuming the run of {left.results_file}: {len(left.done)} sample(s) done")
    return Recorder.resume(left.results_file, progress), left.done, left.in_flight


def _crashed(sample: Sample, machine: Machine) -> Record:
    """The sample a crashed run was running: it took the machine down."""
    log = previous_boot_log()
    trouble = next((line for line in log if re.search(r"Kernel panic|Oops|BUG:|watchdog", line)), "")
    why = f": {re.sub(r'^<[0-9]+>', '', trouble).strip()}" if trouble else ""
    return _record(
        sample, machine, "fail", reason=f"the machine crashed or was reset while running it{why}", load="failed",
        console=log,
    )  # fmt: skip


def _build_all(run: HostRun, samples: list[tuple[Sample, Path]]) -> list[tuple[Sample, BuildResult]]:
    work = run.plan.work / "build"

    def one(item: tuple[Sample, Path]) -> tuple[Sample, BuildResult]:
        sample, directory = item
        built = build_on_host(run.machine.headers, directory, sample, work, run.plan.work / sample.name)
        run.progress(f"{run.machine.name}: built {sample.name}: {built.status} ({built.seconds:.1f} s)")
        if built.status == "ok" and sample.kind == "kmod" and run.plan.signing is not None:
            sign(run.machine, run.plan.signing, Path(built.artifact))
        return sample, built

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(one, samples))


def _run_each(run: HostRun, plan: list[tuple[Sample, BuildResult]], order: dict[str, int]) -> None:
    """Modules, tracefs scripts, bpftrace programs and perf scripts, one agent run each."""
    for sample, built in plan:
        interrupt.check()
        run.one(sample, order[sample.name], built, [])


def _run_twins(run: HostRun, plan: list[tuple[Sample, BuildResult]], order: dict[str, int]) -> None:
    """The bcc twins, with the machine's python3 and bcc: one twin runner compiles them all, as in a guest."""
    rundir = run.stage / "run"
    rundir.mkdir()
    (run.stage / "plan.run").write_text("".join(f"{s.name}\n" for s, _ in plan))
    twin_runner = run.stage / "twin_runner.py"
    twin_runner.write_bytes(_packaged("twin_runner.py"))
    argv = [SYSTEM_PYTHON, str(twin_runner), "--plan", str(run.stage / "plan.run"), "--dir", str(rundir)]
    started = time.monotonic()
    with (rundir / "runner.out").open("w") as out:
        runner = subprocess.Popen(
            [*argv, "--timeout", "900"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={"PATH": SAFE_PATH, "HOME": "/root"},  # no LANG, as in a guest
        )
    try:
        while not (rundir / "compiled").exists() and runner.poll() is None:
            interrupt.check()
            time.sleep(0.2)
        said = (rundir / "runner.out").read_text(errors="replace").splitlines()
        run.bcc = {
            "seconds": round(time.monotonic() - started, 1),
            "runner": said[-2:],
            "versions": versions(Path("/")),
        }
        for sample, built in plan:
            interrupt.check()
            run.one(sample, order[sample.name], built, [str(rundir), str(runner.pid)])
    finally:
        interrupt.end_group(runner)


def verify_host(plan: Plan, progress: Progress) -> Verified:
    """Verify the plan's samples on this machine's running kernel; see the module's docstring."""
    _mount_debugfs(progress)
    machine = inspect()
    found = problems(machine, [s for s, _ in plan.samples], plan.signing)
    if found:
        raise HostError("cannot verify on this machine:\n  - " + "\n  - ".join(found))
    results.check_writable(plan.results_file.parent)
    journal = Journal(plan.results_file.parent / JOURNAL)
    recorder, done, in_flight = _start(plan, machine, journal, progress)
    plan = replace(plan, results_file=recorder.path)
    run = HostRun(machine, plan, plan.work / "stage", journal, recorder, progress)
    shutil.rmtree(run.stage, ignore_errors=True)
    run.stage.mkdir(parents=True)
    (run.stage / "lib.sh").write_bytes(_packaged("agent_lib.sh"))
    (run.stage / "agent_host.sh").write_bytes(_packaged("agent_host.sh"))
    by_name = {s.name: s for s, _ in plan.samples}
    if in_flight in by_name:
        run.save([_crashed(by_name[in_flight], machine)])
        done = [*done, in_flight]
    todo = [(s, d) for s, d in plan.samples if s.name not in done]
    try:
        _verify(run, todo)
    except Stopped as exc:
        progress(f"{machine.name}: stopped: {exc}; the samples after it were not run")
        ran = {r.sample for r in run.recorder.records}
        why = f"not run: the run stopped after {exc}"
        run.save([_record(s, machine, "error", reason=why) for s, _ in todo if s.name not in ran])
    journal.add(event="finish")
    return Verified(run.recorder.records, run.recorder.path)


def _verify(run: HostRun, todo: list[tuple[Sample, Path]]) -> None:
    machine = run.machine
    claimed = [(s, d) for s, d in todo if s.claims(machine.arch, machine.version)]
    names = {s.name for s, _ in claimed}
    records = [_record(s, machine, "not-claimed") for s, _ in todo if s.name not in names]
    for kind in ("bcc", "bpftrace", "perf"):
        why = _twins_missing(kind) if any(s.kind == kind for s, _ in claimed) else ""
        if why:
            run.progress(f"{machine.name}: the {kind} twins are skipped: {why}")
            records += [_record(s, machine, "skipped", reason=why) for s, _ in claimed if s.kind == kind]
            claimed = [(s, d) for s, d in claimed if s.kind != kind]
    run.save(records)
    order = {s.name: i for i, (s, _) in enumerate(run.plan.samples)}
    built_plan: dict[str, list[tuple[Sample, BuildResult]]] = {kind: [] for kind in KINDS}
    for sample, built in _build_all(run, claimed):
        if built.status == "ok":
            _stage(run.stage, sample, built)
            built_plan[sample.kind].append((sample, built))
        else:
            verdict: results.Verdict = "pass" if built.status == "expected-failure" else "fail"
            reason = f"build {built.status}: {built.problem}"
            named = {BUILD: built.problem} if built.status == "expected-failure" else {}
            run.save([_record(sample, machine, verdict, reason=reason, build=_build_fields(built), named=named)])
    _run_each(run, [item for kind in KINDS if kind != "bcc" for item in built_plan[kind]], order)
    if built_plan["bcc"]:
        _run_twins(run, built_plan["bcc"], order)
