#!/usr/bin/env python3
"""kretprobe_recursion_bcc - the bcc twin of kretprobe_recursion.

The module probes a recursive function of its own; bcc has no module, so
this twin probes a recursive kernel function that user space can drive to
a known depth: ep_loop_check_proc(ep, depth) (its arguments since Linux
5.11), which walks nested epoll instances when an epoll file is added to
another epoll.  This program
builds a chain of five epoll instances; adding the fourth to the fifth
recurses four levels deep (depth 0 to 3).

A hash keyed by pid_tgid would be overwritten by the nested calls, so the
entry program keeps a per-task stack: a level counter per task, and the
argument saved under (pid_tgid, level), which is what the kretprobe
instance's private data gives the module for free.
"""

from __future__ import annotations

import argparse
import ctypes as ct
import os
import select
import sys
import time
from collections.abc import Callable

from bcc import BPF

NAME = "kretprobe_recursion_bcc"
FUNC = "ep_loop_check_proc"
CHAIN = 5

BPF_TEXT = r"""
#include <uapi/linux/ptrace.h>

struct krc_key {
    u64 id;
    u64 level;
};

struct krc_event {
    u64 depth;          /* the depth argument */
    u64 level;          /* our own stack level */
    s64 retval;
    u64 ret_ip;         /* where this call returns to */
    u64 seq;
};

BPF_ARRAY(krc_cfg, u64, 2);         /* 0: tgid followed, 1: sequence */
BPF_HASH(krc_level, u64, u64, 64);
BPF_HASH(krc_arg, struct krc_key, u64, 256);
BPF_RINGBUF_OUTPUT(krc_events, 8);

int krc_entry(struct pt_regs *ctx)
{
    int zero = 0;
    u64 *tgid = krc_cfg.lookup(&zero);
    u64 id = bpf_get_current_pid_tgid();
    u64 *lvl, depth = PT_REGS_PARM2(ctx), first = 0;
    struct krc_key key = {.id = id};

    if (!tgid || *tgid != id >> 32)
        return 0;
    lvl = krc_level.lookup_or_try_init(&id, &first);
    if (!lvl)
        return 0;
    key.level = *lvl;
    *lvl += 1;
    krc_arg.update(&key, &depth);
    return 0;
}

int krc_return(struct pt_regs *ctx)
{
    int one = 1;
    u64 id = bpf_get_current_pid_tgid();
    u64 *lvl = krc_level.lookup(&id), *depth, *seq;
    struct krc_key key = {.id = id};
    struct krc_event e = {};

    if (!lvl || *lvl == 0)
        return 0;
    *lvl -= 1;
    key.level = *lvl;
    depth = krc_arg.lookup(&key);
    if (!depth)
        return 0;
    e.depth = *depth;
    e.level = key.level;
    krc_arg.delete(&key);
    e.retval = PT_REGS_RC(ctx);
    e.ret_ip = PT_REGS_IP(ctx);
    seq = krc_cfg.lookup(&one);
    e.seq = seq ? *seq : 0;
    krc_events.ringbuf_output(&e, sizeof(e), 0);
    return 0;
}
"""


class Event(ct.Structure):
    _fields_ = [
        ("depth", ct.c_uint64),
        ("level", ct.c_uint64),
        ("retval", ct.c_int64),
        ("ret_ip", ct.c_uint64),
        ("seq", ct.c_uint64),
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
        self.events: list[tuple[int, int, int, int, int]] = []

    def _event(self, _ctx: object, data: int, _size: int) -> None:
        e = ct.cast(data, ct.POINTER(Event)).contents
        self.events.append((e.seq, e.level, e.depth, e.retval, e.ret_ip))

    def attach(self) -> None:
        cfg = self.bpf["krc_cfg"]
        cfg[ct.c_int(0)] = ct.c_uint64(os.getpid())
        self.bpf["krc_events"].open_ring_buffer(self._event)
        self.bpf.attach_kretprobe(event=FUNC, fn_name="krc_return", maxactive=16)
        self.bpf.attach_kprobe(event=FUNC, fn_name="krc_entry")
        self.say(f"return probe on {FUNC} ({BPF.ksymname(FUNC):016x}), maxactive 16")
        chain = [select.epoll() for _ in range(CHAIN)]
        for i in range(1, CHAIN):
            cfg[ct.c_int(1)] = ct.c_uint64(i)
            chain[i].register(chain[i - 1].fileno(), select.EPOLLIN)
        for ep in chain:
            ep.close()

    def poll(self, timeout_ms: int) -> None:
        self.bpf.ring_buffer_poll(timeout_ms)

    def finish(self) -> None:
        self.bpf.detach_kprobe(event=FUNC)
        _hits, missed = kretprobe_profile(FUNC)
        self.bpf.detach_kretprobe(event=FUNC)
        self.bpf.ring_buffer_consume()
        last = max((ev[0] for ev in self.events), default=0)
        deepest = [ev for ev in self.events if ev[0] == last]
        for _seq, level, depth, retval, ret_ip in deepest:
            where = BPF.ksym(ret_ip, show_offset=True).decode()
            self.say(f"{FUNC}(depth {depth}) = {retval}, level {level}, returns to {where}")
        self.say(
            f"chain of {CHAIN} epolls: last add recursed "
            f"{len(deepest)} levels, {len(self.events)} returns in "
            f"all, missed {missed}"
        )
        inner = {ev[4] for ev in deepest if ev[1] > 0}
        share = len(deepest) > 2 and len(inner) == 1
        self.say(f"inner levels share one return address: {'yes' if share else 'no'}")


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
