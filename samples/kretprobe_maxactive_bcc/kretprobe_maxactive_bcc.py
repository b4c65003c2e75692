#!/usr/bin/env python3
"""kretprobe_maxactive_bcc - the bcc twin of kretprobe_maxactive.

A return probe on hrtimer_nanosleep() with a single instance (maxactive 1):
while one task sleeps in the function, every other entry is missed.  With
maxactive > 0 bcc creates the return probe through tracefs kprobe_events
("r1:"), because the perf kprobe PMU it uses otherwise cannot pass
maxactive; the misses (the kretprobe's nmissed) are then read from
kprobe_profile.  The entry kprobe is a separate probe: unlike the module's
entry handler it also sees the calls the return probe misses, so its
count of entries includes them.
"""

from __future__ import annotations

import argparse
import ctypes as ct
import os
import sys
import time
from collections.abc import Callable

from bcc import BPF

NAME = "kretprobe_maxactive_bcc"
FUNC = "hrtimer_nanosleep"
MAXACTIVE = 1
LOG_LIMIT = 4

BPF_TEXT = r"""
#include <uapi/linux/ptrace.h>

struct kma_event {
    u64 ns;
    u32 pid;
};

BPF_HASH(kma_start, u64, u64, 1024);
BPF_ARRAY(kma_count, u64, 2);       /* 0: entries, 1: returns */

static inline void kma_add(int i)
{
    u64 *n = kma_count.lookup(&i);

    if (n)
        __sync_fetch_and_add(n, 1);
}
BPF_RINGBUF_OUTPUT(kma_events, 8);

int kma_entry(struct pt_regs *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    u64 ts = bpf_ktime_get_ns();

    kma_start.update(&id, &ts);
    kma_add(0);
    return 0;
}

int kma_return(struct pt_regs *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    u64 *ts = kma_start.lookup(&id);
    struct kma_event e = {};

    kma_add(1);
    if (!ts)
        return 0;
    e.ns = bpf_ktime_get_ns() - *ts;
    e.pid = id >> 32;
    kma_start.delete(&id);
    kma_events.ringbuf_output(&e, sizeof(e), 0);
    return 0;
}
"""


class Event(ct.Structure):
    _fields_ = [("ns", ct.c_uint64), ("pid", ct.c_uint32)]


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
        self.logged = 0

    def _event(self, _ctx: object, data: int, _size: int) -> None:
        e = ct.cast(data, ct.POINTER(Event)).contents
        self.logged += 1
        if self.logged <= LOG_LIMIT:
            self.say(f"{FUNC}: pid {e.pid} returned after {e.ns} ns")

    def attach(self) -> None:
        self.bpf["kma_events"].open_ring_buffer(self._event)
        self.bpf.attach_kretprobe(event=FUNC, fn_name="kma_return", maxactive=MAXACTIVE)
        self.bpf.attach_kprobe(event=FUNC, fn_name="kma_entry")
        self.say(f"return probe on {FUNC}, maxactive {MAXACTIVE}")

    def poll(self, timeout_ms: int) -> None:
        self.bpf.ring_buffer_poll(timeout_ms)

    def finish(self) -> None:
        _hits, missed = kretprobe_profile(FUNC)
        self.bpf.detach_kretprobe(event=FUNC)
        self.bpf.detach_kprobe(event=FUNC)
        self.bpf.ring_buffer_consume()
        count = self.bpf["kma_count"]
        entries = count[ct.c_int(0)].value
        returns = count[ct.c_int(1)].value
        self.say(
            f"{FUNC}: entries {entries} returns {returns} missed {missed} (maxactive {MAXACTIVE})"
        )


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
