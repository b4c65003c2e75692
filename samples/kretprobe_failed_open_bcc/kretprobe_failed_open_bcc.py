#!/usr/bin/env python3
"""kretprobe_failed_open_bcc - the bcc twin of kretprobe_failed_open.

The entry kprobe on do_sys_openat2() skips kernel threads (no mm) and
stamps the time, with the path read from the second argument (the user
pointer filename), in a hash keyed by pid_tgid; the return probe reports
every open that returned an error, with its duration, the command name
and the path.  Unlike the module's entry handler, the entry program cannot
stop kprobes from hooking the return of a kernel thread's call; it only
leaves no record, and the return program ignores calls without one.  The
return probe asks for maxactive 16, so bcc creates it through tracefs and
its nmissed can be read from kprobe_profile.
"""

from __future__ import annotations

import argparse
import ctypes as ct
import os
import sys
import time
from collections.abc import Callable

from bcc import BPF

NAME = "kretprobe_failed_open_bcc"
FUNC = "do_sys_openat2"
LOG_LIMIT = 8

BPF_TEXT = r"""
#include <uapi/linux/ptrace.h>
#include <linux/sched.h>

struct kfo_call {
    u64 ts;
    char path[64];
};

struct kfo_event {
    u64 ns;
    s64 retval;
    char comm[16];
    char path[64];
};

BPF_HASH(kfo_start, u64, struct kfo_call, 1024);
BPF_RINGBUF_OUTPUT(kfo_events, 8);

int kfo_entry(struct pt_regs *ctx)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    u64 id = bpf_get_current_pid_tgid();
    struct kfo_call call = {};

    if (task->mm == NULL)
        return 0;       /* a kernel thread: not followed */
    bpf_probe_read_user_str(&call.path, sizeof(call.path),
                            (void *)PT_REGS_PARM2(ctx));
    call.ts = bpf_ktime_get_ns();
    kfo_start.update(&id, &call);
    return 0;
}

int kfo_return(struct pt_regs *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    struct kfo_call *call = kfo_start.lookup(&id);
    struct kfo_event e = {};

    if (!call)
        return 0;
    e.retval = PT_REGS_RC(ctx);
    if (e.retval < 0) {
        e.ns = bpf_ktime_get_ns() - call->ts;
        __builtin_memcpy(e.path, call->path, sizeof(e.path));
    }
    kfo_start.delete(&id);
    if (e.retval >= 0)
        return 0;
    bpf_get_current_comm(&e.comm, sizeof(e.comm));
    kfo_events.ringbuf_output(&e, sizeof(e), 0);
    return 0;
}
"""


class Event(ct.Structure):
    _fields_ = [
        ("ns", ct.c_uint64),
        ("retval", ct.c_int64),
        ("comm", ct.c_char * 16),
        ("path", ct.c_char * 64),
    ]


def kretprobe_profile(func: str) -> tuple[int, int]:
    """(hits, missed) of the return probe this process put on func.

    Given maxactive > 0, bcc's attach_kretprobe() creates the probe through
    tracefs kprobe_events ("r<maxactive>:kprobes/r_<func>_bcc_<pid>"), since
    the perf kprobe PMU it uses otherwise cannot pass maxactive; such a
    probe is listed in kprobe_profile with its hits and nmissed.
    """
    event = f"r_{func}_bcc_{os.getpid()}"
    with open("/sys/kernel/tracing/kprobe_profile", encoding="ascii") as f:
        for line in f:
            words = line.split()
            if words and words[0] == event:
                return int(words[1]), int(words[2])
    raise LookupError(f"{event} not in kprobe_profile")


class Twin:
    def __init__(self, bpf: BPF, say: Callable[[str], None]) -> None:
        self.bpf = bpf
        self.say = say
        self.failures = 0

    def _event(self, _ctx: object, data: int, _size: int) -> None:
        e = ct.cast(data, ct.POINTER(Event)).contents
        self.failures += 1
        if self.failures <= LOG_LIMIT:
            self.say(
                f"{FUNC} ({e.comm.decode(errors='replace')}): "
                f"returned {e.retval} after {e.ns} ns, "
                f"{e.path.decode(errors='replace')}"
            )

    def attach(self) -> None:
        self.bpf["kfo_events"].open_ring_buffer(self._event)
        self.bpf.attach_kretprobe(event=FUNC, fn_name="kfo_return", maxactive=16)
        self.bpf.attach_kprobe(event=FUNC, fn_name="kfo_entry")
        self.say(f"watching failed opens in {FUNC}")

    def poll(self, timeout_ms: int) -> None:
        self.bpf.ring_buffer_poll(timeout_ms)

    def finish(self) -> None:
        self.bpf.detach_kprobe(event=FUNC)
        _hits, missed = kretprobe_profile(FUNC)
        self.bpf.detach_kretprobe(event=FUNC)
        self.bpf.ring_buffer_consume()
        self.say(f"{FUNC}: {self.failures} failed opens, missed {missed}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="how long to stay attached (default 10)"
    )
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(f"{NAME}: {line}", flush=True)

    twin = Twin(BPF(text=BPF_TEXT), say)
    twin.attach()
    deadline = time.monotonic() + args.seconds
    try:
        while time.monotonic() < deadline:
            twin.poll(100)
    except KeyboardInterrupt:
        pass
    twin.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
