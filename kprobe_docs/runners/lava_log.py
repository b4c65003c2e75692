"""Reading a LAVA job's log back into the agent's markers.

LAVA's dispatcher logs one record per line, a YAML flow mapping
``{"dt": ..., "lvl": ..., "msg": ...}`` (``lava-run`` writes them to its
stderr; a server's ``lavacli jobs logs --raw`` gives the same records as a
YAML list).  The guest's console lines are the records of level ``target``;
LAVA escapes their double quotes (``\\"``), which is undone here.  The job's
own verdict is the ``results`` record of definition ``lava``, case ``job``.

What comes out is what a native boot gives: a ``BootLog`` built by the same
``Follower`` from the same marker lines, timed by the records' dates, for
``check`` to judge.  Nothing here judges a sample.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from .markers import BootLog, Follower

# Why a job that LAVA itself failed is no sample's fault: these error types are LAVA's, the lab's, or the job's.
NOT_THE_SAMPLES = ("Infrastructure", "Bug", "Configuration", "Job", "Canceled")
VERSION_RE = re.compile(r"lava-dispatcher, installed at version: (\S+)")
JOB_DIR_RE = re.compile(r"/var/lib/lava/dispatcher/tmp/[^/\s]*?(\d+)/")  # a job's files, on any worker


class LavaLogError(ValueError):
    """A file that is not a LAVA job log."""


@dataclass
class JobLog:
    """One LAVA job's log: the console lines with their times, and what LAVA said about the job."""

    console: list[tuple[float, str]] = field(default_factory=list)  # (seconds since the epoch, line)
    result: str = ""  # the job's own result: pass | fail ("" if the log stops before it)
    error_type: str = ""  # LAVA's error type when it failed the job (Infrastructure, Job, Test, ...)
    error_msg: str = ""
    dispatcher: str = ""  # lava-dispatcher's version, as the job logged it
    job_id: str = ""  # as the job's file paths name it
    monitor_timed_out: bool = False
    started: float = 0.0  # the first record's time
    seconds: float = 0.0  # from the first record to the last

    @property
    def infrastructure(self) -> bool:
        """Whether LAVA failed the job for a reason of its own, before or around the guest."""
        return self.error_type in NOT_THE_SAMPLES


def _records(text: str, name: str) -> list[dict[str, Any]]:
    """The log's records, from a lava-run stderr (a mapping per line) or a server's log (a YAML list)."""
    if text.lstrip().startswith("- "):
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise LavaLogError(f"{name}: not a LAVA job log: {exc}") from exc
        if not isinstance(loaded, list):
            raise LavaLogError(f"{name}: not a LAVA job log (a YAML list of records was expected)")
        records = loaded
    else:
        # lava-run's stderr: a record per line, and whatever else wrote there (a Python warning, a traceback)
        records = [_line(line) for line in text.splitlines() if line.startswith("{")]
    found = [r for r in records if isinstance(r, dict) and "lvl" in r and "msg" in r]
    if not found:
        raise LavaLogError(f"{name}: not a LAVA job log (no record with 'lvl' and 'msg' in it)")
    return found


def _line(line: str) -> Any:
    try:
        return yaml.safe_load(line)
    except yaml.YAMLError:
        return None  # not a record: left out


def _time(record: dict[str, Any]) -> float:
    try:
        return datetime.fromisoformat(str(record.get("dt", ""))).timestamp()
    except ValueError:
        return 0.0


def read(path: Path) -> JobLog:
    """The job log at ``path``."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise LavaLogError(f"{path}: cannot be read: {exc.strerror}") from exc
    if not text.strip():
        raise LavaLogError(f"{path}: empty: the job did not start, or its log was not saved")
    records = _records(text, str(path))
    log = JobLog()
    for record in records:
        _take(log, record)
    times = [t for t in map(_time, records) if t]
    if times:
        log.started, log.seconds = times[0], round(times[-1] - times[0], 1)
    return log


def _take(log: JobLog, record: dict[str, Any]) -> None:
    level, msg = record["lvl"], record["msg"]
    if level == "target" and isinstance(msg, str):
        log.console.append((_time(record), msg.replace('\\"', '"')))
    elif level == "results" and isinstance(msg, dict) and msg.get("definition") == "lava" and msg.get("case") == "job":
        log.result = str(msg.get("result", ""))
        log.error_type = str(msg.get("error_type", ""))
        log.error_msg = str(msg.get("error_msg", ""))
    elif isinstance(msg, str):
        if msg.startswith("err: lava test monitoring has timed out"):
            log.monitor_timed_out = True
        version = VERSION_RE.search(msg)
        if version and not log.dispatcher:
            log.dispatcher = version[1]
        job_dir = JOB_DIR_RE.search(msg)
        if job_dir and not log.job_id:
            log.job_id = job_dir[1]


class Clock:
    """The time a ``Follower`` reads: the date of the log record being fed to it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def replay(jobs: list[JobLog], timeouts: dict[str, float]) -> tuple[BootLog, dict[str, int]]:
    """The markers of ``jobs`` (the boots of one plan, in order) as one BootLog, like the boots of a native run,
    and the index of the job that ran each sample."""
    log = BootLog()
    clock = Clock()
    job_of: dict[str, int] = {}
    for index, job in enumerate(jobs):
        clock.now = job.started
        follower = Follower(timeouts, log, 0.0, clock)
        for when, line in job.console:
            clock.now = when
            follower.line(line)
        if follower.current is not None:  # the log ended in a sample: LAVA gave up waiting, or the guest died
            follower.close("hung" if job.monitor_timed_out else "crashed")
        log.seconds += job.seconds
        job_of.update((run.name, index) for run in log.runs if run.name not in job_of)
    return log, job_of
