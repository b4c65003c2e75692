#!/usr/bin/env python3
"""kprobe_example_bcc - the bcc twin of kprobe_example.

A BPF program on a kprobe at kernel_clone() plays the module's pre-handler:
it keeps the first hit (ip, flags register, task) and counts every hit.
There is no BPF counterpart of the post-handler: a BPF kprobe program runs
before the probed instruction, and nothing of it runs afterwards.
"""

from __future__ import annotations

import argparse
import ctypes as ct
import sys
import time
from collections.abc import Callable

from bcc import BPF

NAME = "kprobe_example_bcc"
FUNC = "kernel_clone"

BPF_TEXT = r"""
#include <uapi/linux/ptrace.h>

struct kex_hit {
    u64 ip;
    u64 flags;
    u32 pid;
    char comm[16];
};

BPF_ARRAY(kex_first, struct kex_hit, 1);
BPF_ARRAY(kex_count, u64, 1);

int kex_pre(struct pt_regs *ctx)
{
    int zero = 0;
    u64 *n = kex_count.lookup(&zero);
    struct kex_hit *hit = kex_first.lookup(&zero);

    if (!n || !hit)
        return 0;
    if (hit->ip == 0) {
        hit->ip = PT_REGS_IP(ctx);
        hit->flags = ctx->flags;
        hit->pid = bpf_get_current_pid_tgid() >> 32;
        bpf_get_current_comm(&hit->comm, sizeof(hit->comm));
    }
    __sync_fetch_and_add(n, 1);
    return 0;
}
"""


def kprobes_listed(func: str) -> list[str]:
    """Lines of the kprobes list for probes inside func's first bytes.

    Matched by address, not name: the list names a probe after the first
    symbol at its address (__x64_sys_getppid shows as __do_sys_getppid).
    """
    base = BPF.ksymname(func)
    found = []
    try:
        with open("/sys/kernel/debug/kprobes/list", encoding="ascii") as f:
            for line in f:
                words = line.split()
                if len(words) >= 3 and 0 <= int(words[0], 16) - base < 32:
                    found.append(line.strip())
    except OSError:
        pass
    return found


class Twin:
    def __init__(self, bpf: BPF, say: Callable[[str], None]) -> None:
        self.bpf = bpf
        self.say = say

    def attach(self) -> None:
        self.bpf.attach_kprobe(event=FUNC, fn_name="kex_pre")
        where = [ln.split()[2] for ln in kprobes_listed(FUNC)] or ["?"]
        self.say(f"planted kprobe at {where[0]} ({BPF.ksymname(FUNC):016x})")

    def poll(self, timeout_ms: int) -> None:
        time.sleep(timeout_ms / 1000)

    def finish(self) -> None:
        self.bpf.detach_kprobe(event=FUNC)
        zero = ct.c_int(0)
        hits = self.bpf["kex_count"][zero].value
        first = self.bpf["kex_first"][zero]
        if first.ip:
            ip = BPF.ksym(first.ip, show_offset=True).decode()
            self.say(
                f"pre_handler: {FUNC} hit, ip = {ip}, "
                f"flags = 0x{first.flags:x}, by "
                f"{first.comm.decode(errors='replace')} "
                f"(pid {first.pid})"
            )
        self.say("post_handler: none, a BPF kprobe program runs only before the probed instruction")
        self.say(f"kprobe at {FUNC} removed: {hits} pre handler calls")


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
