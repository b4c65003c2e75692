"""The host runner proven on test machines: full Debian systems under QEMU (``kprobe_docs.runners.testvm``).

Collected from ``verify/test_machines.md``, one test per sample and machine,
``<sample>[host-debian-<release>-amd64]``, and per machine ``host_run_tox``,
``host_leftover``, ``host_resume`` and ``host_signature`` (select them all
with ``-k host-debian``).
The first test to run boots every machine, in parallel, and plays its user
through these phases:

1. ``install``: the README's test-machine instructions on the system
   python3 (a venv with the system's site packages, for bcc), offline,
   and ``run-tox``: ``./run-tox --version`` on that python3;
2. ``main``: ``kprobe-docs verify --target host``, every sample and twin;
3. ``leftover``: a fixture that leaves a kprobe event defined: the run
   fails it for that and stops;
4. ``panic``: a fixture that panics the machine, which reboots, then
   ``resume``: ``--resume`` records the crash and runs the rest;
5. the machine boots again with ``module.sig_enforce=1``: ``sig-refused``
   (no key: the run refuses, saying why), ``sig-signed`` (signed with the
   key the firmware's ``db`` holds: passes), ``sig-untrusted`` (signed
   with another key: the module is refused).

The ``main`` results are imported into ``results/``, so the pages show the
machines beside the QEMU targets.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

from kprobe_docs import interrupt
from kprobe_docs.runners import testvm
from kprobe_docs.sources import extract
from kprobe_docs.sources.sample import Sample
from kprobe_docs.store import results
from kprobe_docs.store.results import Record

T = TypeVar("T")
VERIFY = "/opt/kprobe-docs/bin/kprobe-docs verify --target host"
STATE = "/var/lib/kd-test/results"


def _phase(name: str, options: str) -> tuple[str, str]:
    """A phase that runs the host verification with ``options`` and brings its results out."""
    command = (
        f"cd /root/kprobe-docs && {VERIFY} --results {STATE}/{name} {options}; rc=$?; "
        f"mkdir -p /mnt/kd/out/{name} && cp {STATE}/{name}/*.json /mnt/kd/out/{name}/ 2>/dev/null; exit $rc"
    )
    return name, command


INSTALL = (
    "install",
    "cp -r /mnt/kd/kprobe-docs /root/kprobe-docs && python3 -m venv --system-site-packages /opt/kprobe-docs && "
    "/opt/kprobe-docs/bin/pip install --no-index --find-links /mnt/kd/wheels /root/kprobe-docs",
)


# The README's own commands start with ./run-tox, which must work on Debian's python3 (PEP 668): offline here.
RUN_TOX = (
    "run-tox",
    "cp -r /mnt/kd/kprobe-docs /root/run-tox && cd /root/run-tox && "
    "PIP_NO_INDEX=1 PIP_FIND_LINKS=/mnt/kd/wheels ./run-tox --version",
)


def _keys(role: str) -> str:
    return f"--sign-key /mnt/kd/keys/{role}.key --sign-cert /mnt/kd/keys/{role}.crt"


def phases() -> list[tuple[str, str]]:
    """The phases, in order; the panic and resume phases share one results directory (the journal's)."""
    resume = f"--fixtures --samples fault_panic,kprobe_example --results {STATE}/resume"
    return [
        INSTALL,
        RUN_TOX,
        _phase("main", ""),
        _phase("leftover", "--fixtures --samples fault_leftover,kprobe_example"),
        ("panic", f"cd /root/kprobe-docs && {VERIFY} {resume}"),
        _phase("resume", f"{resume} --resume"),
        ("stop", ""),
        _phase("sig-refused", "--samples kprobe_example"),
        _phase("sig-signed", f"--samples kprobe_example {_keys('trusted')}"),
        _phase("sig-untrusted", f"--samples kprobe_example {_keys('untrusted')}"),
    ]  # fmt: skip


class Once(Generic[T]):
    """A result made on first use, with SIGTERM and SIGHUP ending it as Ctrl-C does; when making it failed,
    every later use raises the same error instead of making it again."""

    def __init__(self, make: Callable[[], T]) -> None:
        self.make = make
        self.value: T | None = None
        self.error: BaseException | None = None

    def get(self) -> T:
        if self.error is not None:
            raise self.error
        if self.value is None:
            try:
                with interrupt.handled():
                    self.value = self.make()
            except BaseException as exc:
                self.error = exc
                raise
        return self.value


class Machines:
    """Every test machine's session, run once, in parallel, on the first test that needs one."""

    def __init__(self, config: pytest.Config, progress: Any) -> None:
        self.progress = progress
        self.work = Path(tempfile.mkdtemp(prefix="kprobe-docs-machines-"))
        config.add_cleanup(lambda: shutil.rmtree(self.work, ignore_errors=True))
        self.sessions = Once(self._run_all)

    def session(self, release: testvm.Release) -> testvm.Session:
        return self.sessions.get()[release.name]

    def _run_all(self) -> dict[str, testvm.Session]:
        with ThreadPoolExecutor(max_workers=len(testvm.RELEASES)) as pool:
            done = dict(zip([r.name for r in testvm.RELEASES], pool.map(self._run, testvm.RELEASES), strict=True))
        root = testvm.ROOT
        known = {s.name: s.source_hash() for s, _ in extract.load_samples(root, [], None)}
        for session in done.values():
            for path in session.results("main"):
                for line in results.import_file(path, root / "results", known):
                    self.progress(line)
        return done

    def _run(self, release: testvm.Release) -> testvm.Session:
        session = testvm.Session(release, self.work / release.name, phases(), self.progress)
        session.boot()
        session.boot("module.sig_enforce=1")
        return session


def _records(session: testvm.Session, phase: str) -> dict[str, Record]:
    found: dict[str, Record] = {}
    for path in session.results(phase):
        found.update((r.sample, r) for r in results.load_file(path).records)
    return found


def _phase_output(session: testvm.Session, phase: str) -> str:
    rc, log = session.outcome(phase)
    return f"phase {phase} exited {rc or 'never ran'}; its output ends:\n{log[-3000:]}"


class CheckItem(pytest.Item):
    """An item whose failed check reports its message, not pytest's own frames (the CI log shows a tail)."""

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, AssertionError):
            return f"{self.name}: {excinfo.value}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, self.name


class MachineItem(CheckItem):
    """One check on one test machine."""

    def __init__(self, *, machines: Machines, release: testvm.Release, check: str, sample: Sample | None,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.machines, self.release, self.check, self.sample = machines, release, check, sample

    def runtest(self) -> None:
        session = self.machines.session(self.release)
        install_rc, _ = session.outcome("install")
        assert install_rc == "0", _phase_output(session, "install")
        getattr(self, f"_{self.check}")(session)

    def _sample(self, session: testvm.Session) -> None:
        assert self.sample is not None
        record = _records(session, "main").get(self.sample.name)
        assert record is not None, _phase_output(session, "main")
        if record.verdict in ("not-claimed", "skipped"):
            pytest.skip(f"{self.sample.name} on {self.release.machine}: {record.verdict} {record.reason}".strip())
        assert record.verdict == "pass", f"{record.reason}\n{_phase_output(session, 'main')}"

    def _run_tox(self, session: testvm.Session) -> None:
        """./run-tox, the README's commands' first word, on the machine's own python3 (PEP 668)."""
        rc, log = session.outcome("run-tox")
        assert rc == "0", _phase_output(session, "run-tox")
        assert "run-tox: installing tox into /root/run-tox/.run-tox" in log
        assert " from /root/run-tox/.run-tox/" in log  # tox --version names where it runs from

    def _leftover(self, session: testvm.Session) -> None:
        rc, log = session.outcome("leftover")
        records = _records(session, "leftover")
        assert rc == "1", _phase_output(session, "leftover")
        left = records["fault_leftover"]
        assert left.verdict == "fail"
        assert re.match(r"^leftover: kprobe_events entry still defined: p:kprobes/kd_leftover", left.reason), (
            left.reason
        )
        after = records["kprobe_example"]
        assert after.verdict == "error" and after.reason.startswith("not run: the run stopped after fault_leftover")
        assert "stopped: fault_leftover" in log

    def _resume(self, session: testvm.Session) -> None:
        assert session.outcome("panic")[0] == "rebooted", _phase_output(session, "panic")
        rc, _ = session.outcome("resume")
        records = _records(session, "resume")
        crashed = records["fault_panic"]
        assert crashed.verdict == "fail", _phase_output(session, "resume")
        assert crashed.reason.startswith("the machine crashed or was reset while running it")
        assert records["kprobe_example"].verdict == "pass", _phase_output(session, "resume")
        assert rc == "1"  # the crashed sample is a failure

    def _signature(self, session: testvm.Session) -> None:
        rc, log = session.outcome("sig-refused")
        assert rc == "2", _phase_output(session, "sig-refused")
        assert "this kernel loads only signed modules (module.sig_enforce is on)" in log
        assert "--sign-key KEY --sign-cert CERT" in log
        signed = _records(session, "sig-signed").get("kprobe_example")
        assert signed is not None and signed.verdict == "pass", _phase_output(session, "sig-signed")
        untrusted = _records(session, "sig-untrusted").get("kprobe_example")
        assert untrusted is not None, _phase_output(session, "sig-untrusted")
        assert untrusted.verdict == "fail" and "Key was rejected by service" in untrusted.reason


class MachinesFile(pytest.File):
    """``verify/test_machines.md``: the collection anchor of the test machines' tests."""

    def collect(self) -> Iterator[MachineItem]:
        progress = self.config.stash.get(PROGRESS, print)
        machines = Machines(self.config, progress)
        samples = [s for s, _ in extract.load_samples(testvm.ROOT, [], None)]
        for release in testvm.RELEASES:
            for sample in samples:
                yield MachineItem.from_parent(
                    self, name=f"{sample.name}[{release.machine}]", machines=machines, release=release,
                    check="sample", sample=sample,
                )  # fmt: skip
            for check in ("run_tox", "leftover", "resume", "signature"):
                yield MachineItem.from_parent(
                    self, name=f"host_{check}[{release.machine}]", machines=machines, release=release, check=check,
                    sample=None,
                )  # fmt: skip


PROGRESS: pytest.StashKey[Any] = pytest.StashKey()
