"""Judging a sample's run from what the agent reported."""

from __future__ import annotations

from kprobe_docs.judge.check import evaluate, match_in_order, taint_flags
from kprobe_docs.runners.markers import BootLog, Follower, SampleRun
from kprobe_docs.sources.expectations import Context
from kprobe_docs.sources.sample import make_sample

CONTEXT = Context("amd64", (6, 1), {"CONFIG_X86_KERNEL_IBT": "n"})
SAMPLE = make_sample(
    "demo",
    {"kind": "kmod", "expect": "demo: loaded\ndemo: removed", "reject": "Missed probing [1-9]", "listed": "k +f\\+0x0"},
    "int x;\n",
    "docs/p.md",
    1,
)
OK_EVENTS = {"insmod1": "0", "rmmod1": "0", "insmod2": "0", "rmmod2": "0", "taint": "12288"}


def _run(log1: list[str], **changes: object) -> SampleRun:
    run = SampleRun("demo", events=dict(OK_EVENTS), outcome="completed")
    run.sections = {"log1": log1, "log2": [], "kprobes": ["ffff  k  f+0x0    [FTRACE]"]}
    for key, value in changes.items():
        setattr(run, key, value)
    return run


def test_clean_run_passes_and_keeps_matched_lines() -> None:
    verdict = evaluate(_run(["[1.0] demo: loaded", "[1.1] other", "[1.2] demo: removed"]), SAMPLE, CONTEXT)
    assert verdict.passed
    assert verdict.matched == ["[1.0] demo: loaded", "[1.2] demo: removed"]


def test_expectations_must_appear_in_order() -> None:
    verdict = evaluate(_run(["[1.2] demo: removed", "[1.3] demo: loaded"]), SAMPLE, CONTEXT)
    assert verdict.checks == "failed"
    assert verdict.reason == (
        "expected log line not found: /demo: removed/; the nearest line printed: [1.2] demo: removed"
    )


def test_missing_line_names_what_was_printed_instead() -> None:
    expect = r"demo: entries ([4-9]) returns \1$"
    sample = make_sample("demo", {"kind": "kmod", "expect": expect}, "int x;\n", "p.md", 1)
    verdict = evaluate(_run(["[1.0] demo: loaded", "[2.0] demo: entries 5 returns 4"]), sample, CONTEXT)
    assert verdict.reason == (
        r"expected log line not found: /demo: entries ([4-9]) returns \1$/; the nearest line printed: "
        "[2.0] demo: entries 5 returns 4"
    )
    nothing_alike = evaluate(_run(["[1.0] unrelated"]), sample, CONTEXT)
    assert nothing_alike.reason == r"expected log line not found: /demo: entries ([4-9]) returns \1$/"


def test_rejected_pattern_fails() -> None:
    verdict = evaluate(_run(["demo: loaded", "demo: removed", "Missed probing 3 instances"]), SAMPLE, CONTEXT)
    assert verdict.reason.startswith("rejected pattern /Missed probing [1-9]/")


def test_oops_is_the_reason_even_when_unload_failed() -> None:
    run = _run(["demo: loaded", "BUG: kernel NULL pointer dereference, address: 0"])
    run.events["rmmod1"] = "1"
    verdict = evaluate(run, SAMPLE, CONTEXT)
    assert verdict.load == "failed"
    assert verdict.reason == "kernel log: BUG: kernel NULL pointer dereference, address: 0"


def test_hang_and_crash_outcomes() -> None:
    hung = evaluate(_run([], outcome="hung", events={}), SAMPLE, CONTEXT)
    assert hung.reason == "hang before its first step: no progress within 60 s; nothing on the console"
    assert hung.checks == "not-run"
    console = ["[ 5.1] demo: exit loops", "", "[ 9.0] rcu: INFO: rcu_preempt detected stalls", "[ 9.1]   tasks"]
    in_rmmod = evaluate(
        _run([], outcome="hung", events={"insmod1": "0", "step": "rmmod1"}, console=console), SAMPLE, CONTEXT
    )
    assert in_rmmod.reason == (
        "hang in rmmod (first unload): no progress within 60 s; last console lines: "
        "[ 5.1] demo: exit loops | [ 9.0] rcu: INFO: rcu_preempt detected stalls | [ 9.1] tasks"
    )
    assert in_rmmod.verdict == "fail"
    crashed = evaluate(
        _run([], outcome="crashed", console=["Kernel panic - not syncing: Fatal exception"]), SAMPLE, CONTEXT
    )
    assert crashed.reason == "kernel crashed: Kernel panic - not syncing: Fatal exception"


def test_damaging_taint_fails() -> None:
    run = _run(["demo: loaded", "demo: removed"])
    run.events["taint"] = str(12288 | 512)
    assert evaluate(run, SAMPLE, CONTEXT).reason == "kernel tainted W (WOE)"


def test_listed_patterns_read_the_kprobes_list() -> None:
    run = _run(["demo: loaded", "demo: removed"])
    run.sections["kprobes"] = []
    assert evaluate(run, SAMPLE, CONTEXT).reason == "kprobes/list has no line matching /k +f\\+0x0/"


def test_helpers() -> None:
    assert match_in_order(("a", "b"), ["b", "a"]) == (["a"], "b")
    assert taint_flags(12288) == "OE"


def test_kernel_output_appended_to_an_agent_line_is_split_off() -> None:
    log = BootLog()
    follower = Follower({}, log, 10.0)
    follower.line("@@KD begin demo 0")
    follower.line("@@KD insmod1 demo 0[    4.58] demo: 3 kprobes")
    follower.line("@@KD end demo 0")
    (run,) = log.runs
    assert run.events["insmod1"] == "0"
    assert run.console == ["[    4.58] demo: 3 kprobes"]


TWIN = make_sample(
    "demo_bcc", {"kind": "bcc", "expect": "demo_bcc: attached\ndemo_bcc: [1-9] hits"}, "x = 1\n", "p.md", 1
)


def _twin_run(out: list[str], dmesg: list[str], **events: str) -> SampleRun:
    run = SampleRun("demo_bcc", events={"attach": "0", "detach": "0", "taint": "0", **events}, outcome="completed")
    run.sections = {"out": out, "dmesg": dmesg}
    return run


def test_bcc_twin_is_judged_on_its_own_output() -> None:
    verdict = evaluate(_twin_run(["demo_bcc: attached", "demo_bcc: 3 hits"], ["[2.0] unrelated"]), TWIN, CONTEXT)
    assert verdict.passed
    assert verdict.matched == ["demo_bcc: attached", "demo_bcc: 3 hits"]


def test_bcc_attach_failure_names_the_programs_last_words() -> None:
    out = ["Traceback (most recent call last):", "BPF compile error: line 4: use of undeclared identifier 'n'", ""]
    verdict = evaluate(_twin_run(out, [], attach="1", detach="1"), TWIN, CONTEXT)
    assert verdict.load == "failed"
    assert verdict.reason == "attach exited 1: BPF compile error: line 4: use of undeclared identifier 'n'"


def test_bcc_twin_fails_on_a_kernel_warning_while_it_ran() -> None:
    dmesg = ["[3.0] WARNING: CPU: 0 PID: 1 at kernel/kprobes.c:1 foo"]
    verdict = evaluate(_twin_run(["demo_bcc: attached", "demo_bcc: 3 hits"], dmesg), TWIN, CONTEXT)
    assert verdict.reason.startswith("kernel log: [3.0] WARNING:")


def test_setup_step_extends_the_deadline_until_the_first_sample() -> None:
    follower = Follower({"demo_bcc": 20.0}, BootLog(), 10.0)
    follower.line("@@KD booted - 6.1.0-56-amd64")
    follower.line("@@KD setup - 600")
    assert follower.in_setup
    assert follower.deadline - follower.started > 500
    follower.line("@@KD begin demo_bcc 0")
    assert not follower.in_setup
    assert follower.deadline - follower.started < 100


def test_a_sample_that_leaves_something_behind_fails_for_it() -> None:
    run = _run(["demo: loaded", "demo: removed"])
    run.events["leftover"] = "2"
    run.sections["leftover"] = ["kprobe_events entry still defined: p:kprobes/kd_x kernel_clone", "kprobe still ..."]
    verdict = evaluate(run, SAMPLE, CONTEXT)
    assert verdict.verdict == "fail"
    assert verdict.reason == "leftover: kprobe_events entry still defined: p:kprobes/kd_x kernel_clone (and 1 more)"


SCRIPT = make_sample("demo_tracefs", {"kind": "tracefs", "expect": "demo: \\(f\\+0x0/0x10\\)"}, "echo\n", "p", 1)


def _script_run(out: list[str], **events: str) -> SampleRun:
    run = SampleRun("demo_tracefs", events={"script": "0", "taint": "0", **events}, outcome="completed")
    run.sections = {"out": out, "dmesg": []}
    return run


def test_tracefs_script_is_judged_on_what_it_printed() -> None:
    verdict = evaluate(_script_run(["  sh-7 [000] ..... 1.0: demo: (f+0x0/0x10)"]), SCRIPT, CONTEXT)
    assert verdict.passed


def test_tracefs_script_that_fails_names_the_kernels_error() -> None:
    out = [
        "sh: write error: No such file or directory",
        "[   10.008188] trace_kprobe: error: Invalid probed address or symbol",
        "  Command: p:kd/x kernel_clone j=@jiffies:u64",
        "                             ^",
    ]
    verdict = evaluate(_script_run(out, script="1"), SCRIPT, CONTEXT)
    assert verdict.load == "failed"
    assert verdict.reason == "the script exited 1: [   10.008188] trace_kprobe: error: Invalid probed address or symbol"


def test_tracefs_script_that_fails_without_an_error_log_names_its_last_line() -> None:
    verdict = evaluate(_script_run(["no open path to probe"], script="1"), SCRIPT, CONTEXT)
    assert verdict.reason == "the script exited 1: no open path to probe"


PROGRAM = make_sample("demo_bpftrace", {"kind": "bpftrace", "expect": "demo: 2 hits$"}, "BEGIN {}\n", "p", 1)


def test_bpftrace_program_is_judged_on_its_output_and_exit_status() -> None:
    run = SampleRun("demo_bpftrace", events={"run": "0", "taint": "0"}, outcome="completed")
    run.sections = {"out": ["Attaching 2 probes...", "demo: 2 hits"], "dmesg": []}
    assert evaluate(run, PROGRAM, CONTEXT).passed
    run.events["run"] = "1"
    run.sections["out"] = ["x.bt:19:2-77: ERROR: String is too long (over 64 bytes): x", "    printf(...)", "    ~~~~"]
    verdict = evaluate(run, PROGRAM, CONTEXT)
    assert verdict.reason == "bpftrace exited 1: x.bt:19:2-77: ERROR: String is too long (over 64 bytes): x"


PERF = make_sample("demo_perf", {"kind": "perf", "expect": "cat +kd_perf:f: .* ret=-2$"}, "perf -v\n", "p", 1)


def test_perf_script_is_judged_on_its_output_and_names_perfs_error() -> None:
    run = SampleRun("demo_perf", events={"script": "0", "taint": "0"}, outcome="completed")
    run.sections = {"out": ["             cat kd_perf:f: (ffffffff8130 <- ffffffff8120) ret=-2"], "dmesg": []}
    assert evaluate(run, PERF, CONTEXT).passed
    run.events["script"] = "255"
    run.sections["out"] = ["  Error: Failed to add events.", "no open path to probe"]
    verdict = evaluate(run, PERF, CONTEXT)
    assert verdict.reason == "the script exited 255: Error: Failed to add events."
