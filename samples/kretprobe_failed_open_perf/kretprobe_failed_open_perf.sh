#!/bin/sh
# kretprobe_failed_open_perf - the perf twin of kretprobe_failed_open:
# perf probe defines a return probe event on the kernel's open path, perf
# record records it, filtered to errors, while cat opens a file that does
# not exist, and perf script prints the record.
set -eu
DATA=${TMPDIR:-/tmp}/kretprobe_failed_open_perf.data
say() { echo "kretprobe_failed_open_perf: $*"; }

cleanup() {
	set +e
	perf probe -q -d 'kd_perf:*' 2>/dev/null
	rm -f "$DATA"
}
trap cleanup EXIT

command -v perf >/dev/null || { echo "no perf here: apt install linux-perf" >&2 && exit 1; }
if perf probe -q -n -a 'do_sys_openat2 filename:string' 2>/dev/null; then
	say "by name (filename): accepted, this kernel's debug information is installed"
else
	say "by name (filename): refused without the kernel's debug information"
fi

func=
for candidate in do_file_open do_sys_openat2; do
	if perf probe -q -a "kd_perf:failed_open=$candidate%return ret=\$retval:s64" \
		2>/dev/null; then
		func=$candidate
		break
	fi
done
[ -n "$func" ] || { echo "no open path to probe" >&2 && exit 1; }
say "watching failed opens in $func"
grep ':kd_perf/' /sys/kernel/tracing/kprobe_events
perf record -q -N -a -o "$DATA" -e kd_perf:failed_open__return \
	--filter 'ret >= -4095 && ret < 0' -- sh -c 'cat /no/such/file 2>/dev/null || true'
perf script -i "$DATA" -F trace:comm,event,trace
