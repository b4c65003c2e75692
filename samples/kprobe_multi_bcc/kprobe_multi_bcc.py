#!/usr/bin/env python3
"""kprobe_multi_bcc - the bcc twin of kprobe_multi.

Three BPF programs, a, b and c, on one function.  Each attach_kprobe()
creates its own kprobe (perf kprobe PMU), so the kernel aggregates three
kprobes at one address, as for the module's register_kprobes().  The probed
function is the getppid() system call, made by this program itself a known
number of times (the programs count only this process).

Not expressible from bcc: registering the probes as one all-or-nothing
array (register_kprobes()), KPROBE_FLAG_DISABLED and
disable_kprobe()/enable_kprobe(), which keep a probe registered but
disarmed.  Here b is attached but gated off by a flag in a BPF map (its
kprobe fires, the program returns at once), and c is "disabled" by
detaching it (its kprobe is unregistered) and "enabled" by attaching it
again (a new kprobe).  A module's own function cannot be probed either:
there is no module.

bcc added detach_kprobe(event, fn_name) in 0.22; with an older bcc (0.18
on Debian bullseye) this program keeps each program's perf descriptor
itself, as detach() below shows.
"""

from __future__ import annotations

import argparse
import ctypes as ct
import inspect
import os
import sys
import time
from collections.abc import Callable

from bcc import BPF

NAME = "kprobe_multi_bcc"
# bcc 0.22 added fn_name to detach_kprobe(): detaching one program of several on a function
BY_PROGRAM = "fn_name" in inspect.signature(BPF.detach_kprobe).parameters

BPF_TEXT = r"""
#include <uapi/linux/ptrace.h>

BPF_ARRAY(kmu_cfg, u64, 2);         /* 0: tgid counted, 1: b enabled */
BPF_ARRAY(kmu_hits, u64, 3);

static inline void kmu_add(int i)
{
    u64 *n = kmu_hits.lookup(&i);

    if (n)
        __sync_fetch_and_add(n, 1);
}

static inline int kmu_mine(void)
{
    int zero = 0;
    u64 *tgid = kmu_cfg.lookup(&zero);

    return tgid && *tgid == bpf_get_current_pid_tgid() >> 32;
}

int kmu_a(struct pt_regs *ctx)
{
    if (kmu_mine())
        kmu_add(0);
    return 0;
}

int kmu_b(struct pt_regs *ctx)
{
    int one = 1;
    u64 *enabled = kmu_cfg.lookup(&one);

    if (kmu_mine() && enabled && *enabled)
        kmu_add(1);
    return 0;
}

int kmu_c(struct pt_regs *ctx)
{
    if (kmu_mine())
        kmu_add(2);
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
        self.func = bpf.get_syscall_fnname("getppid").decode()
        # bcc before 0.22 keys its perf descriptors by this event name alone
        self.event = b"p_" + self.func.encode().replace(b"+", b"_").replace(b".", b"_")
        self.fds: dict[str, int] = {}  # program -> descriptor, kept with bcc before 0.22

    def _calls(self, times: int) -> None:
        for _ in range(times):
            os.getppid()

    def _hits(self) -> str:
        hits = self.bpf["kmu_hits"]
        a, b, c = (hits[ct.c_int(i)].value for i in range(3))
        return f"a={a} b={b} c={c}"

    def attach_one(self, prog: str) -> None:
        self.bpf.attach_kprobe(event=self.func, fn_name=prog)
        if not BY_PROGRAM:  # the descriptor bcc just stored is this program's
            self.fds[prog] = self.bpf.kprobe_fds[self.event]

    def detach_one(self, prog: str) -> None:
        """Detach one program; the function's other programs stay attached."""
        if BY_PROGRAM:
            self.bpf.detach_kprobe(event=self.func, fn_name=prog)
            return
        # Older bcc closes the one descriptor it holds for the function:
        # make it prog's, detach, then give bcc one still attached.
        self.bpf.kprobe_fds[self.event] = self.fds.pop(prog)
        self.bpf.detach_kprobe(event=self.func)
        if self.fds:
            self.bpf.kprobe_fds[self.event] = next(iter(self.fds.values()))

    def attach(self) -> None:
        cfg = self.bpf["kmu_cfg"]
        cfg[ct.c_int(0)] = ct.c_uint64(os.getpid())
        cfg[ct.c_int(1)] = ct.c_uint64(0)
        for prog in ("kmu_a", "kmu_b", "kmu_c"):
            self.attach_one(prog)
        listed = kprobes_listed(self.func)
        where = listed[0].split()[2] if listed else "?"
        self.say(f"{len(listed)} kprobes at {where}, b gated off")
        self._calls(3)
        self.say(f"phase 1, 3 calls: {self._hits()}")
        self.detach_one("kmu_c")
        self._calls(2)
        self.say(f"phase 2, c detached, 2 calls: {self._hits()}")
        self.attach_one("kmu_c")
        self._calls(4)
        self.say(f"phase 3, c attached again, 4 calls: {self._hits()}")
        self.detach_one("kmu_c")
        self.say(f"c detached again: {len(kprobes_listed(self.func))} kprobes at {where}")

    def poll(self, timeout_ms: int) -> None:
        time.sleep(timeout_ms / 1000)

    def finish(self) -> None:
        self._calls(1)
        for prog in ("kmu_a", "kmu_b"):
            self.detach_one(prog)
        self.say(f"detached after 1 more call: {self._hits()}")


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
