#!/usr/bin/env python3
"""kretprobe_example_bcc - the bcc twin of kretprobe_example.

An entry kprobe on kernel_clone() stamps the time in a BPF hash keyed by
pid_tgid (the module's per-instance data, ri->data); the return probe looks
the stamp up and sends the return value (the new task's PID) and the
duration to user space through a ring buffer.  The return probe asks for
maxactive 20, which makes bcc create it through tracefs kprobe_events, so
that its nmissed can be read back from kprobe_profile.
"""

from __future__ import annotations

import argparse
import ctypes as ct
import os
import sys
import time
from collections.abc import Callable

from bcc import BPF

NAME = "kretprobe_example_bcc"
FUNC = "kernel_clone"
MAX_REPORTS = 8

BPF_TEXT = r"""
#include <uapi/linux/ptrace.h>

struct kre_event {
    u64 ns;
    s64 retval;
    u32 pid;
    char comm[16];
};

BPF_HASH(kre_start, u64, u64, 1024);
BPF_RINGBUF_OUTPUT(kre_events, 8);

int kre_entry(struct pt_regs *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    u64 ts = bpf_ktime_get_ns();

    kre_start.update(&id, &ts);
    return 0;
}

int kre_return(struct pt_regs *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    u64 *ts = kre_start.lookup(&id);
    struct kre_event e = {};

    if (!ts)
        return 0;
    e.ns = bpf_ktime_get_ns() - *ts;
    kre_start.delete(&id);
    e.retval = PT_REGS_RC(ctx);
    e.pid = id >> 32;
    bpf_get_current_comm(&e.comm, sizeof(e.comm));
    kre_events.ringbuf_output(&e, sizeof(e), 0);
    return 0;
}
"""


class Event(ct.Structure):
    _fields_ = [
        ("ns", ct.c_uint64),
        ("retval", ct.c_int64),
        ("pid", ct.c_uint32),
        ("comm", ct.c_char * 16),
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
        self.returns = 0

    def _event(self, _ctx: object, data: int, _size: int) -> None:
        e = ct.cast(data, ct.POINTER(Event)).contents
        self.returns += 1
        if self.returns <= MAX_REPORTS:
            self.say(
                f"{FUNC} returned {e.retval} after {e.ns} ns "
                f"({e.comm.decode(errors='replace')}, pid {e.pid})"
            )

    def attach(self) -> None:
        self.bpf["kre_events"].open_ring_buffer(self._event)
        # Return probe first: a call entered before it exists is never
        # stamped, so no stamp is left without its return.
        self.bpf.attach_kretprobe(event=FUNC, fn_name="kre_return", maxactive=20)
        self.bpf.attach_kprobe(event=FUNC, fn_name="kre_entry")
        self.say(f"return probe planted on {FUNC} ({BPF.ksymname(FUNC):016x}), maxactive 20")

    def poll(self, timeout_ms: int) -> None:
        self.bpf.ring_buffer_poll(timeout_ms)

    def finish(self) -> None:
        self.bpf.detach_kprobe(event=FUNC)
        _hits, missed = kretprobe_profile(FUNC)
        self.bpf.detach_kretprobe(event=FUNC)
        self.bpf.ring_buffer_consume()
        self.say(f"return probe on {FUNC} removed: {self.returns} returns seen")
        self.say(f"Missed probing {missed} instances of {FUNC}")


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
