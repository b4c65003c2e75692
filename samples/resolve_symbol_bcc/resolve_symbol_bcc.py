#!/usr/bin/env python3
"""resolve_symbol_bcc - the bcc twin of resolve_symbol.

The module plants a kprobe to learn a symbol's address because modules
can no longer call kallsyms_lookup_name().  User space never needed that
trick: as root it reads /proc/kallsyms, which is what BPF.ksymname() (name
to address) and BPF.ksym() (address to name) do.  To mirror the module
anyway, this twin plants a kprobe with bcc and derives the symbol's
address from the kprobes list (probe address minus offset), then checks
it against BPF.ksymname() and BPF.ksym().
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from bcc import BPF

NAME = "resolve_symbol_bcc"
SYMBOLS = ("kallsyms_lookup_name", "vfree")

BPF_TEXT = r"""
#include <uapi/linux/ptrace.h>

int rsy_probe(struct pt_regs *ctx)
{
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

    def _by_kprobe(self, sym: str) -> int:
        """The symbol's address derived from a kprobe planted on it."""
        self.bpf.attach_kprobe(event=sym, fn_name="rsy_probe")
        try:
            line = kprobes_listed(sym)[0].split()
        finally:
            self.bpf.detach_kprobe(event=sym)
        where = line[2]
        addr = int(line[0], 16) - int(where.split("+")[1], 16)
        self.say(f"{sym}: kprobe at {where}, symbol at {addr:016x}")
        return addr

    def attach(self) -> None:
        first = SYMBOLS[0]
        addr = self._by_kprobe(first)
        self.say(f"resolved {first} = {addr:016x}")
        for sym in SYMBOLS[1:]:
            addr = self._by_kprobe(sym)
            known = BPF.ksymname(sym)
            back = BPF.ksym(addr, show_offset=True).decode()
            verdict = "match" if addr == known else "MISMATCH"
            self.say(
                f"self-check {sym}: resolved {addr:016x}, "
                f"BPF.ksymname {known:016x} ({back}): {verdict}"
            )

    def poll(self, timeout_ms: int) -> None:
        time.sleep(timeout_ms / 1000)

    def finish(self) -> None:
        pass


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
