"""The LAVA runner's logic: reading a job log back into markers, and the jobs it writes.

The logs here are made record by record the way LAVA's dispatcher writes
them (lava_common/log.py: a YAML flow mapping per line, double quotes
escaped in console lines); ``verify/lava_jobs.py`` runs real jobs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kprobe_docs import system
from kprobe_docs.runners import lava
from kprobe_docs.runners.lava_log import JobLog, LavaLogError, read, replay
from kprobe_docs.store import results


def _record(second: float, level: str, msg: Any) -> dict[str, Any]:
    return {"dt": f"2026-12-01T10:00:{second:09.6f}", "lvl": level, "msg": msg}


def _console(second: float, line: str) -> dict[str, Any]:
    return _record(second, "target", line.replace('"', '\\"'))  # LAVA escapes the console's double quotes


def _stderr(records: list[dict[str, Any]]) -> str:
    """Records as lava-run writes them to its stderr: one flow mapping per line."""
    return "".join(yaml.dump(r, default_flow_style=True, default_style='"', width=10**6) for r in records)


def _server(records: list[dict[str, Any]]) -> str:
    """The same records as a server's log: a YAML list."""
    return yaml.safe_dump(records, default_flow_style=False)


def _job(result: str, error_type: str = "", error_msg: str = "") -> dict[str, Any]:
    msg = {"case": "job", "definition": "lava", "result": result}
    if error_type:
        msg |= {"error_type": error_type, "error_msg": error_msg}
    return _record(59, "results", msg)


def _log(tmp_path: Path, records: list[dict[str, Any]], name: str = "job-1.log", server: bool = False) -> Path:
    path = tmp_path / name
    path.write_text(_server(records) if server else _stderr(records))
    return path


SAMPLE_RUN = [
    _record(0, "info", "lava-dispatcher, installed at version: 2023.01"),
    _console(2, "@@KD booted - 6.1.0-57-amd64"),
    _console(3, "@@KD begin kprobe_example 0"),
    _console(4, '@@KL kprobe_example log kprobe_example: pre "quoted"'),
    _console(9, "@@KD end kprobe_example 0"),
    _console(10, "@@KD done - 1"),
    _job("pass"),
]


@pytest.mark.parametrize("server", [False, True], ids=["lava-run-stderr", "server-log"])
def test_a_job_log_gives_the_agents_markers_with_quotes_restored_and_the_jobs_result(
    tmp_path: Path, server: bool
) -> None:
    job = read(_log(tmp_path, SAMPLE_RUN, server=server))
    assert [line for _, line in job.console][2] == '@@KL kprobe_example log kprobe_example: pre "quoted"'
    assert (job.result, job.error_type, job.dispatcher, job.seconds) == ("pass", "", "2023.01", 59.0)
    boot, job_of = replay([job], {"kprobe_example": 20.0})
    (run,) = boot.runs
    assert (run.name, run.outcome, run.seconds) == ("kprobe_example", "completed", 6.0)
    assert run.sections["log"] == ['kprobe_example: pre "quoted"']
    assert boot.boot_seconds == [2.0] and job_of == {"kprobe_example": 0}


def test_lines_that_are_no_record_are_left_out_and_a_file_of_none_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "job-1.log"
    path.write_text("Traceback (most recent call last):\n" + _stderr(SAMPLE_RUN) + "{not: [yaml\n")
    assert read(path).result == "pass"
    path.write_text("<html><body>502 Bad Gateway</body></html>\n")
    with pytest.raises(LavaLogError, match="not a LAVA job log"):
        read(path)
    path.write_text("")
    with pytest.raises(LavaLogError, match="empty: the job did not start"):
        read(path)


def test_a_guest_that_stops_in_a_sample_crashed_it_and_a_follow_on_job_runs_the_next(tmp_path: Path) -> None:
    first = [
        _console(1, "@@KD booted - 6.1.0-57-amd64"),
        _console(2, "@@KD begin fault_oops 0"),
        _console(3, "BUG: kernel NULL pointer dereference, address: 0000000000000000"),
        _console(4, "Kernel panic - not syncing: Attempted to kill init!"),
        _job("fail", "Infrastructure", "Connection closed"),
    ]
    second = [
        _console(1, "@@KD booted - 6.1.0-57-amd64"),
        _console(2, "@@KD begin kprobe_example 1"),
        _console(5, "@@KD end kprobe_example 1"),
        _console(6, "@@KD done - 2"),
        _job("pass"),
    ]
    jobs = [read(_log(tmp_path, first)), read(_log(tmp_path, second, "job-2.log"))]
    assert jobs[0].infrastructure
    boot, job_of = replay(jobs, {})
    assert [(r.name, r.outcome) for r in boot.runs] == [("fault_oops", "crashed"), ("kprobe_example", "completed")]
    assert "BUG: kernel NULL pointer dereference, address: 0000000000000000" in boot.runs[0].console
    assert job_of == {"fault_oops": 0, "kprobe_example": 1}


def test_a_sample_lava_gave_up_waiting_for_hung() -> None:
    job = JobLog(console=[(1.0, "@@KD booted - x"), (2.0, "@@KD begin fault_hang 0")])
    job.monitor_timed_out = True
    boot, _ = replay([job], {})
    assert boot.runs[0].outcome == "hung"


def test_the_job_starts_the_agent_at_its_sample_and_lava_s_schema_accepts_it(tmp_path: Path) -> None:
    urls = ("https://lab.example.org/a/vmlinuz", "https://lab.example.org/a/ramdisk.cpio.gz")
    job = lava.job_definition("debian-trixie-arm64", "arm64", urls, 3, 120.0, "qemu-aarch64")
    kernel = job["actions"][0]["deploy"]["images"]["kernel"]
    assert kernel["image_arg"].endswith('-append "console=ttyAMA0 loglevel=3 panic=-1 printk.time=1 kd.start=3"')
    assert job["device_type"] == "qemu-aarch64" and job["context"] == {"arch": "arm64"}
    assert job["actions"][2]["test"]["timeout"] == {"seconds": 120}
    path = tmp_path / "job.yaml"
    lava._yaml(path, job)
    assert yaml.safe_load(path.read_text()) == job
    checker = [lava.SYSTEM_PYTHON, lava.SCHEMA_CHECKER, "job", str(path)]
    proc = subprocess.run(checker, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_job_lava_s_schema_refuses_is_named_with_lava_s_words(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("device_type: qemu\njob_name: broken\n")
    with pytest.raises(lava.LavaError, match="LAVA's schema refuses it"):
        lava.validate(path)


def test_the_device_has_no_network_and_no_kvm() -> None:
    qemu = lava.device_dictionary("amd64")["actions"]["boot"]["methods"]["qemu"]["parameters"]
    argv = " ".join([qemu["command"], *qemu["options"], *qemu["extra"]])
    assert "-nic none" in argv and "-accel tcg,thread=single" in argv
    assert "-enable-kvm" not in argv and "-net user" not in argv


def test_a_directory_without_exported_jobs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(lava.LavaError, match="no exported LAVA jobs"):
        lava.job_dirs(tmp_path)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "plan.json").write_text("{}")
    with pytest.raises(lava.LavaError, match="not a plan of this kprobe-docs"):
        lava.load_plan(tmp_path / "t")


def test_a_run_recording_fewer_facts_keeps_the_others(tmp_path: Path) -> None:
    results.save(tmp_path / "1.json", {"id": "1"}, [], {"t": {"arch": "amd64", "config": {"CONFIG_KPROBES": "y"}}})
    results.save(tmp_path / "2.json", {"id": "2"}, [], {"t": {"arch": "amd64", "boot_seconds": [1.0]}})
    assert results.newest(tmp_path).targets["t"] == {
        "arch": "amd64",
        "config": {"CONFIG_KPROBES": "y"},
        "boot_seconds": [1.0],
    }


def test_lava_dispatcher_is_installed_without_the_servers_it_recommends() -> None:
    assert system.install_lines(["cpio", "lava-dispatcher", "tidy"]) == [
        "apt-get install -y cpio tidy",
        "apt-get install -y --no-install-recommends lava-dispatcher",
    ]
