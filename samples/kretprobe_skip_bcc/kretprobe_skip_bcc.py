#!/usr/bin/env python3
"""kretprobe_skip_bcc - the bcc twin of kretprobe_skip.

A kretprobe's entry handler declines a call by returning non-zero.  In BPF
the entry program is a separate kprobe and has no say over the return
probe; it declines a call by not recording it, and the return program
skips the calls it finds no record for.  Every second call on each CPU is
declined (a per-CPU sequence number: BPF programs do not nest on one CPU,
so no atomic read-modify-write is needed).
"""

from __future__ import annotations

import argparse
import ctypes as ct
import os
import sys
import time
from collections.abc import Callable

from bcc import BPF

NAME = "kretprobe_skip_bcc"
FUNC = "do_sys_openat2"

BPF_TEXT = r"""
#include <uapi/linux/ptrace.h>

BPF_PERCPU_ARRAY(ksk_seq, u64, 1);
BPF_HASH(ksk_kept, u64, u8, 1024);
BPF_ARRAY(ksk_count, u64, 3);       /* 0: entries, 1: skipped, 2: returns */

static inline void ksk_add(int i)
{
    u64 *n = ksk_count.lookup(&i);

    if (n)
        __sync_fetch_and_add(n, 1);
}

int ksk_entry(struct pt_regs *ctx)
{
    int zero = 0;
    u64 id = bpf_get_current_pid_tgid();
    u64 *seq = ksk_seq.lookup(&zero);
    u8 one = 1;

    if (!seq)
        return 0;
    *seq += 1;
    ksk_add(0);
    if (*seq % 2 == 0) {
        ksk_add(1);
        return 0;       /* declined: no record, the return is skipped */
    }
    ksk_kept.update(&id, &one);
    return 0;
}

int ksk_return(struct pt_regs *ctx)
{
    u64 id = bpf_get_current_pid_tgid();

    if (!ksk_kept.lookup(&id))
        return 0;
    ksk_kept.delete(&id);
    ksk_add(2);
    return 0;
}
"""


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

    def attach(self) -> None:
        # Return probe first, entry probe last; detached in reverse order.
        self.bpf.attach_kretprobe(event=FUNC, fn_name="ksk_return", maxactive=32)
        self.bpf.attach_kprobe(event=FUNC, fn_name="ksk_entry")
        self.say(f"return probe on {FUNC} skips every second call")

    def poll(self, timeout_ms: int) -> None:
        time.sleep(timeout_ms / 1000)

    def finish(self) -> None:
        self.bpf.detach_kprobe(event=FUNC)
        time.sleep(0.2)  # let kept calls still in flight return
        _hits, missed = kretprobe_profile(FUNC)
        self.bpf.detach_kretprobe(event=FUNC)
        count = self.bpf["ksk_count"]
        e, s, r = (count[ct.c_int(i)].value for i in range(3))
        in_flight = len(self.bpf["ksk_kept"])
        self.say(
            f"{FUNC}: entries {e}, skipped {s}, returns {r}, missed {missed}, in flight {in_flight}"
        )
        ok = r == e - s
        self.say(f"returns == entries - skipped: {'yes' if ok else 'no'}")


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
