"""LAVA runner: the module boot of each target as a LAVA job, run by LAVA's own dispatcher.

``export`` builds a target's samples as ``verify`` does and writes, per
target, a directory a lab can take: the kernel, the gzipped initramfs with
the agent and the samples, ``job-1.yaml`` (a LAVA job that boots them in QEMU
and follows the agent with a test monitor), the device dictionary and
dispatcher configuration for a local ``lava-run``, ``plan.json`` (what the
job runs, and the facts of the kernel that checks need) and ``build.json``
(the samples that did not get into the job, already judged).
``lab-job.yaml`` is the same job with the files at a lab's URLs and the lab's
device type.

``run`` runs those jobs with ``lava-run``, and after a sample that stopped
the guest (an oops taints the kernel and the agent powers off) a follow-on
job from the next sample, as the native runner boots again.  ``import_dirs``
reads the job logs back into markers (``lava_log``), judges them with
``check`` and writes a results file; a job LAVA failed for a reason of its
own makes its samples errors, never failures.

Bcc, bpftrace and perf twins need the release's root over 9p, which a LAVA
tmpfs job does not carry: they are recorded as skipped.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import platform
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import yaml
from pydantic import TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic reads typing's TypedDict only from Python 3.12

from .. import interrupt, system
from ..build.builder import BuildResult
from ..build.environment import Kernel
from ..sources.arches import ARCHES
from ..sources.expectations import Context
from ..sources.sample import Sample
from ..sources.targets import Catalog, Target
from ..store import results
from ..store.results import STRICT, Name, Record, TargetFacts, describe
from . import guests, qemu
from .initramfs import ModulesTree, make_initramfs
from .lava_log import JobLog, LavaLogError, read, replay
from .markers import BOOT_TIMEOUT, GAP_TIMEOUT, BootLog, SampleRun

Progress = Callable[[str], None]
PLAN_FORMAT: Literal[1] = 1
DEVICE_TYPE = "qemu"  # LAVA's device type for a local QEMU guest
MONITOR = "kprobe-docs"
KINDS = guests.BOOTS["kmod"]  # what a LAVA job runs: the module boot's kinds
SKIPPED = "bcc, bpftrace and perf twins need the release's root over 9p, which a LAVA tmpfs job does not carry"
JOB_IDS = itertools.count(1)
JOB_IDS_LOCK = threading.Lock()
# LAVA's overlay drive, which a monitors-only job never attaches; the device schema wants it described.
GUEST_DRIVE = {"size": 512, "interface": "ide", "driveid": "lavatest"}
MAX_JOBS = 20  # follow-on jobs of one target, at most: one per sample that stopped its guest
SCHEMA_CHECKER = "/usr/share/lava-common/lava-schema.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # the one lava-common's modules are installed for
LAVA_WORK = "/var/lib/lava/dispatcher/tmp"  # lava-run's files of job N are under LAVA_WORK/N/


class LavaError(RuntimeError):
    """A LAVA export, run or import that cannot go on."""


@with_config(STRICT)
class PlannedSample(TypedDict):
    name: Name
    source_hash: str
    timeout: float
    build_seconds: float
    build_log: str


@with_config(STRICT)
class PlanContext(TypedDict):
    arch: str
    version: tuple[int, int]
    config: dict[str, str]


@with_config(STRICT)
class PlanFile(TypedDict):
    """``plan.json``: what a target's jobs run, and what judging them needs to know of the kernel."""

    format: Literal[1]
    target: Name
    release: str
    arch: Name
    flavour: str
    samples: list[PlannedSample]
    context: PlanContext
    config: dict[str, str]  # the options the configuring page shows
    provenance: dict[str, str]


PLAN: TypeAdapter[PlanFile] = TypeAdapter(PlanFile)


@dataclass(frozen=True)
class Export:
    """What to export: samples (with their extracted directories) for targets, into ``out``."""

    samples: list[tuple[Sample, Path]]
    targets: list[Target]
    catalog: Catalog
    out: Path
    artifacts_url: str = ""  # where a lab serves the exported files, for lab-job.yaml
    device_type: str = DEVICE_TYPE  # the lab's device type, for lab-job.yaml
    jobs: int = 1


def _yaml(path: Path, data: Any) -> None:
    """Write ``data`` as YAML (block style; a library's dump, so no value can turn into markup or keys)."""
    path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=1000))


def job_definition(
    target: str, arch: str, urls: tuple[str, str], start: int, seconds: float, device_type: str = DEVICE_TYPE
) -> dict[str, Any]:
    """A LAVA job booting the target's kernel (``urls``: kernel, gzipped ramdisk) from sample ``start``.

    A test monitor follows the agent: it starts at the agent's ``booted`` marker, ends at ``done``, and
    reports each sample's ``end`` marker as a case of result ``unknown`` (kprobe-docs judges, from the log).
    """
    return {
        "device_type": device_type,
        "job_name": f"kprobe-docs {target} from sample {start + 1}",
        "visibility": "public",
        "priority": "medium",
        "context": {"arch": arch},
        "timeouts": {
            "job": {"seconds": int(seconds + 2 * BOOT_TIMEOUT)},
            "connections": {"lava-test-monitor": {"seconds": int(BOOT_TIMEOUT)}},  # from boot to the agent
        },
        "actions": [
            {
                "deploy": {
                    "to": "tmpfs",
                    "timeout": {"minutes": 5},
                    "images": {
                        "kernel": {
                            "url": urls[0],
                            "image_arg": f'-kernel {{kernel}} -append "{qemu.kernel_cmdline(arch, start)}"',
                        },
                        "ramdisk": {"url": urls[1], "compression": "gz", "image_arg": "-initrd {ramdisk}"},
                    },
                }
            },
            {"boot": {"method": "qemu", "media": "tmpfs", "timeout": {"seconds": int(BOOT_TIMEOUT)}}},
            {
                "test": {
                    "timeout": {"seconds": int(seconds)},
                    "monitors": [
                        {
                            "name": MONITOR,
                            "start": "@@KD booted",
                            "end": "@@KD done",
                            "pattern": r"@@KD end (?P<test_case_id>\S+) (?P<result>\d)\d*",
                            "fixupdict": {digit: "unknown" for digit in "0123456789"},
                        }
                    ],
                }
            },
        ],
    }


def device_dictionary(arch: str) -> dict[str, Any]:
    """A rendered LAVA device dictionary for a QEMU guest of ``arch`` as the native runner boots it (TCG, no NIC)."""
    return {
        "constants": {
            "posix": {"lava_test_sh_cmd": "/bin/sh", "lava_test_results_dir": "/lava-%s", "lava_test_shell_file": None},
            "shutdown-message": "The system is going down for reboot NOW",
            "kernel-start-message": "Linux version [0-9]",
            "default-shell-prompt": "lava-test: # ",
            "spawn_maxread": "4092",
            "failure_retry": 1,
            "boot_retry": None,
        },
        "parameters": {"pass": None},
        "available_architectures": [arch],
        "actions": {
            "deploy": {
                "connections": {"serial": None},
                "methods": {"image": {"parameters": {"guest": GUEST_DRIVE}}},
            },
            "boot": {
                "connections": {"serial": None},
                "methods": {
                    "qemu": {
                        "parameters": {
                            "command": ARCHES[arch].qemu,
                            "options": ["-nographic", "-nic none", "-m 1024", "-monitor none", "-no-reboot"],
                            "extra": _pairs(qemu.machine_options(arch, "tcg")),
                        }
                    }
                },
            },
        },
        "timeouts": {"actions": {"power-off": {"seconds": 10}}, "connections": {}},
    }


def _pairs(argv: list[str]) -> list[str]:
    """``["-machine", "pc", ...]`` as LAVA's option strings ``["-machine pc", ...]``."""
    return [f"{option} {value}" for option, value in zip(argv[::2], argv[1::2], strict=True)]


def job_seconds(timeouts: Iterable[float]) -> float:
    """A job's test time: its samples' limits, and the gap after the last."""
    return sum(timeouts) + GAP_TIMEOUT


def _local_urls(directory: Path) -> tuple[str, str]:
    """Where a local lava-run fetches the exported kernel and ramdisk."""
    return f"file://{directory.resolve()}/vmlinuz", f"file://{directory.resolve()}/ramdisk.cpio.gz"


def _planned(sample: Sample, built: BuildResult) -> PlannedSample:
    return {"name": sample.name, "source_hash": sample.source_hash(), "timeout": float(sample.timeout),
            "build_seconds": built.seconds, "build_log": built.log}  # fmt: skip


def _plan(
    target: Target, kernel: Kernel, plan: list[tuple[Sample, BuildResult]], provenance: dict[str, str]
) -> PlanFile:
    context = kernel.context()
    return {
        "format": PLAN_FORMAT,
        "target": target.name,
        "release": target.release,
        "arch": target.arch,
        "flavour": target.flavour,
        "samples": [_planned(s, b) for s, b in plan],
        "context": {"arch": context.arch, "version": context.version, "config": dict(context.config)},
        "config": kernel.config_values(guests.CONFIG_SHOWN),
        "provenance": provenance,
    }


def export_target(job: Export, target: Target, progress: Progress) -> Path:
    """Build ``target``'s samples and write its job directory; the directory."""
    env = guests.environment_for(target, job.catalog, progress)
    kernel = env.kernels[target.name]
    out = job.out / target.name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    provenance = {**guests.provenance_of(kernel, target, ""), "runner": "lava"}
    native = guests.Job(job.samples, [target], job.catalog, out / "build", out / "unused.json")
    records, built = guests.build_stage(native, target, env, out / "build", provenance, progress)
    plan = [(s, b) for s, b in built if s.kind in KINDS]
    records += [guests.record_of(s, target, "skipped", reason=SKIPPED, provenance=provenance)
                for s, _ in built if s.kind not in KINDS]  # fmt: skip
    results.save(out / "build.json", {"id": f"lava-export-{target.name}"}, records, {})
    tree = ModulesTree(Path(kernel.modules), kernel.release) if kernel.modules else None
    cpio = out / "ramdisk.cpio"
    make_initramfs(Path(kernel.busybox), [(s, Path(b.artifact)) for s, b in plan], cpio, tree)
    with cpio.open("rb") as raw, gzip.open(out / "ramdisk.cpio.gz", "wb", compresslevel=6) as packed:
        shutil.copyfileobj(raw, packed)
    cpio.unlink()
    shutil.copyfile(kernel.vmlinuz, out / "vmlinuz")
    samples = [s for s, _ in plan]
    (out / "plan.json").write_text(json.dumps(_plan(target, kernel, plan, provenance), indent=1) + "\n")
    seconds = job_seconds(float(s.timeout) for s in samples)
    _yaml(out / "job-1.yaml", job_definition(target.name, target.arch, _local_urls(out), 0, seconds))
    validate(out / "job-1.yaml")
    if job.artifacts_url:
        base = f"{job.artifacts_url.rstrip('/')}/{target.name}"
        lab = job_definition(target.name, target.arch, (f"{base}/vmlinuz", f"{base}/ramdisk.cpio.gz"), 0,
                             seconds, job.device_type)  # fmt: skip
        _yaml(out / "lab-job.yaml", lab)
        validate(out / "lab-job.yaml")
    _yaml(out / "device.yaml", device_dictionary(target.arch))
    _yaml(out / "dispatcher.yaml", {"dispatcher_ip": "127.0.0.1"})  # lava-run looks it up even for tmpfs jobs
    progress(f"{target.name}: exported a LAVA job of {len(plan)} samples to {out}")
    return out


def export(job: Export, progress: Progress) -> list[Path]:
    """Every target's job directory, ``job.jobs`` targets at a time."""
    job.out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=job.jobs) as pool:
        return list(pool.map(lambda t: export_target(job, t, progress), job.targets))


# Running, locally


@dataclass(frozen=True)
class Plan:
    """A job directory's ``plan.json``, checked."""

    directory: Path
    data: PlanFile

    @property
    def target(self) -> str:
        return self.data["target"]

    @property
    def names(self) -> list[str]:
        return [s["name"] for s in self.data["samples"]]

    @property
    def timeouts(self) -> dict[str, float]:
        return {s["name"]: s["timeout"] for s in self.data["samples"]}

    def context(self) -> Context:
        found = self.data["context"]
        return Context(found["arch"], found["version"], found["config"])

    def sample(self, name: str) -> PlannedSample:
        return next(s for s in self.data["samples"] if s["name"] == name)


def load_plan(directory: Path) -> Plan:
    path = directory / "plan.json"
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise LavaError(f"{directory}: not an exported LAVA job directory ({path}: {exc.strerror})") from exc
    try:
        return Plan(directory, PLAN.validate_json(text))
    except ValidationError as exc:
        raise LavaError(f"{path}: not a plan of this kprobe-docs (format {PLAN_FORMAT}): {describe(exc)}") from exc


def job_dirs(path: Path) -> list[Path]:
    """The exported target directories at ``path``: itself if it is one, else those in it."""
    if (path / "plan.json").is_file():
        return [path]
    found = sorted(p.parent for p in path.glob("*/plan.json"))
    if not found:
        raise LavaError(f"{path}: no exported LAVA jobs (no plan.json in it or its subdirectories): run 'lava export'")
    return found


def validate(job: Path) -> None:
    """Check a job against LAVA's own schema, where lava-common is installed (it ships the checker)."""
    if not Path(SCHEMA_CHECKER).is_file() or not Path(SYSTEM_PYTHON).is_file():
        return
    proc = interrupt.run([SYSTEM_PYTHON, SCHEMA_CHECKER, "job", str(job)])
    if proc.returncode != 0:
        raise LavaError(f"{job}: LAVA's schema refuses it: {(proc.stdout + proc.stderr).strip()[-1500:]}")


def job_logs(directory: Path) -> list[Path]:
    """The job logs of a directory, in the order the jobs ran (``job-1.log``, ``job-2.log``, ...)."""
    found = [p for p in directory.glob("job-*.log") if p.stem.removeprefix("job-").isdigit()]
    return sorted(found, key=lambda p: int(p.stem.removeprefix("job-")))


def _read(log: Path) -> JobLog:
    try:
        return read(log)
    except LavaLogError as exc:
        raise LavaError(str(exc)) from exc


def _next_job_id() -> int:
    with JOB_IDS_LOCK:
        return os.getpid() * 1000 + next(JOB_IDS)


def _writer(out: IO[str]) -> Callable[[str], None]:
    def write(line: str) -> None:
        out.write(line)

    return write


def _end_guests(job_id: int) -> None:
    """Kill what still runs from the job's files: QEMU, which lava-run starts in a session of its own (pexpect),
    so that ending lava-run's group does not reach it."""
    mark = f"{LAVA_WORK}/{job_id}/".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with suppress(OSError):
            if mark in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)


def run_job(directory: Path, number: int, progress: Progress) -> JobLog:
    """Run ``job-<number>.yaml`` of ``directory`` with lava-run; its log goes to ``job-<number>.log``."""
    if shutil.which("lava-run") is None:
        line = system.install_lines(["lava-dispatcher"])[0]
        raise LavaError(f"lava-run is missing: run 'kprobe-docs setup' as root, or: {line}")
    job_id = _next_job_id()
    log_path = directory / f"job-{number}.log"
    argv = ["lava-run", "--job-id", str(job_id), "--output-dir", str(directory / f"job-{number}.out"),
            "--device", str(directory / "device.yaml"), "--dispatcher", str(directory / "dispatcher.yaml"),
            str(directory / f"job-{number}.yaml")]  # fmt: skip
    started = time.monotonic()
    try:
        with log_path.open("w") as log:
            status = interrupt.stream(argv, _writer(log))  # an interrupt ends lava-run's process group
    finally:
        _end_guests(job_id)
    seconds = round(time.monotonic() - started, 1)
    meta = {"job_id": job_id, "device_type": DEVICE_TYPE, "exit_status": status, "seconds": seconds}
    (directory / f"job-{number}.json").write_text(json.dumps(meta) + "\n")
    found = _read(log_path)
    said = f", {found.error_type}: {found.error_msg}" if found.error_type else ""
    progress(f"{directory.name}: LAVA job {job_id} ({number}): {found.result or 'no result'} in {seconds:.0f} s{said}")
    return found


def run_dir(directory: Path, progress: Progress) -> None:
    """Run a target's jobs: the first, then one from the next sample each time a sample stopped the guest."""
    plan = load_plan(directory)
    for stale in directory.glob("job-*"):  # an earlier run's logs and follow-on jobs
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.name != "job-1.yaml":
            stale.unlink()
    jobs: list[JobLog] = []
    ran = 0
    for number in range(1, MAX_JOBS + 1):
        jobs.append(run_job(directory, number, progress))
        boot, _ = replay(jobs, plan.timeouts)
        start = _next_start(plan, boot)
        if start is None or len(boot.runs) == ran:  # done, or this job ran nothing: another would do the same
            return
        ran = len(boot.runs)
        seconds = job_seconds(s["timeout"] for s in plan.data["samples"][start:])
        job = job_definition(plan.target, plan.data["arch"], _local_urls(directory), start, seconds)
        _yaml(directory / f"job-{number + 1}.yaml", job)
        progress(f"{directory.name}: the guest stopped after {plan.names[start - 1]}; a job from {plan.names[start]}")


def _next_start(plan: Plan, boot: BootLog) -> int | None:
    """Where a follow-on job starts, or None: all ran, the guest never ran a sample, or it stopped for good."""
    if not boot.runs:
        return None
    start = plan.names.index(boot.runs[-1].name) + 1
    return start if start < len(plan.names) else None


def run(directories: list[Path], progress: Progress, jobs: int = 1) -> None:
    """Run the exported jobs of ``directories``, ``jobs`` targets at a time."""
    if os.geteuid() != 0:
        raise LavaError("lava-run runs only as root (it manages the job's files under /var/lib/lava)")
    for directory in directories:
        load_plan(directory)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(lambda d: run_dir(d, progress), directories))


# Importing


def _job_meta(log: Path) -> dict[str, Any]:
    meta = log.with_suffix(".json")
    try:
        found = json.loads(meta.read_text())
    except (OSError, ValueError):
        return {}  # a log downloaded from a lab's server comes alone
    return found if isinstance(found, dict) else {}


def _lava_provenance(plan: Plan, logs: list[Path], jobs: list[JobLog]) -> dict[str, str]:
    """The export's provenance, and the LAVA jobs': ids and dispatcher from their logs, the device type from
    ``lava run``'s notes, else from the lab job exported."""
    metas = [_job_meta(p) for p in logs]
    device_type = str(metas[0].get("device_type", "")) if metas else ""
    return {
        **plan.data["provenance"],
        "runner": "lava",
        "lava_job_id": " ".join(j.job_id or p.stem for j, p in zip(jobs, logs, strict=True)),
        "lava_device_type": device_type or _lab_device_type(plan.directory),
        "lava_dispatcher": next((j.dispatcher for j in jobs if j.dispatcher), "?"),
        "accelerator": "tcg" if any(metas) else "?",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "harness": results.harness_hash(),
        "host": platform.node(),
    }


def _lab_device_type(directory: Path) -> str:
    try:
        job = yaml.safe_load((directory / "lab-job.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return "?"
    return str(job.get("device_type", "?")) if isinstance(job, dict) else "?"


def _unrun(jobs: list[JobLog], logs: list[Path], boot: BootLog, plan: Plan) -> str:
    """Why the samples the jobs never reached were not run."""
    last = jobs[-1] if jobs else None
    if last is None:
        return f"no job log in {plan.directory} (job-1.log): run 'kprobe-docs lava run' or save the lab's log there"
    if last.infrastructure or (last.error_type and not boot.boot_seconds):
        said = " ".join(last.error_msg.split()) or "no message"
        return f"infrastructure error: LAVA ended {logs[-1].name} before the sample ran ({last.error_type}: {said})"
    if not boot.runs:
        return f"the guest of {logs[-1].name} never reached the agent's first sample"
    return f"the guest stopped after {boot.runs[-1].name} and no job ran the samples after it"


def import_dir(directory: Path, samples: dict[str, Sample]) -> tuple[list[Record], TargetFacts]:
    """The records and facts of one target's job directory, judged by ``check``."""
    plan = load_plan(directory)
    logs = job_logs(directory)
    jobs = [_read(p) for p in logs]
    boot, job_of = replay(jobs, plan.timeouts)
    provenance = _lava_provenance(plan, logs, jobs)
    target = Target(plan.target, plan.data["release"], (), plan.data["arch"], plan.data["flavour"])
    built = results.load_file(directory / "build.json").records
    runs = {r.name: r for r in boot.runs}
    failure = _unrun(jobs, logs, boot, plan)
    records = [_stale(r, samples) for r in built]
    for name in plan.names:
        sample = _sample(samples, name, plan)
        run = runs.get(name) or SampleRun(name, console=[failure], outcome="unbooted")
        log = logs[job_of[name]] if name in job_of else (logs[-1] if logs else directory / "job-1.log")
        built_one = _built(plan, name)
        record = guests.run_record(sample, target, built_one, run, provenance, log, plan.context())
        records.append(record)
    facts: TargetFacts = {
        "release": plan.data["release"],
        "arch": plan.data["arch"],
        "flavour": plan.data["flavour"],
        "provenance": provenance,
        "config": plan.data["config"],
        "debugfs": boot.facts,
        "boot_seconds": boot.boot_seconds,
    }
    return records, facts


def _built(plan: Plan, name: str) -> BuildResult:
    """How the export built the sample ``name`` (it got into the job, so it built)."""
    found = plan.sample(name)
    return BuildResult(status="ok", seconds=found["build_seconds"], log=found["build_log"], problem="", artifact="")


def _sample(samples: dict[str, Sample], name: str, plan: Plan) -> Sample:
    """The project's sample ``name``, the very version the job ran."""
    sample = samples.get(name)
    if sample is None:
        raise LavaError(f"{plan.directory}: the job ran {name!r}, which this checkout does not have")
    if sample.source_hash() != plan.sample(name)["source_hash"]:
        raise LavaError(f"{plan.directory}: the job ran another version of {name} than this checkout's: export again")
    return sample


def _stale(record: Record, samples: dict[str, Sample]) -> Record:
    sample = samples.get(record.sample)
    if sample is None or sample.source_hash() != record.source_hash:
        raise LavaError(f"the export's record of {record.sample} is of another version than this checkout's")
    return record


def import_dirs(directories: list[Path], samples: dict[str, Sample], results_file: Path) -> list[Record]:
    """Judge every job directory's logs and write them as one results file."""
    recorder = guests.Recorder(results_file, lambda _: None)
    recorder.run["id"] = results_file.stem
    records: list[Record] = []
    for directory in directories:
        found, facts = import_dir(directory, samples)
        target = Target(found[0].target if found else directory.name, "", (), "", "")
        recorder.add(target, guests.TargetRun(found, facts))
        records += found
    return records
