#!/bin/sh
# kprobe-docs host agent: one sample on the running kernel of this machine.
#
#   agent_host.sh kmod DIR NAME INDEX
#   agent_host.sh tracefs DIR NAME INDEX
#   agent_host.sh bpftrace DIR NAME INDEX
#   agent_host.sh perf DIR NAME INDEX
#   agent_host.sh bcc DIR NAME INDEX RUNDIR RUNNER_PID
#
# DIR holds lib.sh and, under DIR/NAME/, the sample's files.  The steps are
# those of a guest (lib.sh's run_sample, run_script, run_bpftrace and run_twin) and the
# report uses the same markers, on standard output.  Unlike a guest, it never
# clears the kernel's log, which is the machine's: it reads what came after
# its mark from /dev/kmsg.
set -u
kind=$1 KD=$2 name=$3 index=$4
T=$(mktemp -d "${TMPDIR:-/tmp}/kprobe-docs-agent.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
KEEP_LEFTOVERS=1
. "$KD/lib.sh"

# The kernel log records after sequence number $1, printed as dmesg prints
# them; continuation lines (" KEY=value") are left out.
kmsg_since() {
	dd if=/dev/kmsg bs=8192 iflag=nonblock 2>/dev/null | awk -v after="$1" '
		/^ / { next }
		{
			split($0, field, /[,;]/)
			if (field[2] + 0 <= after + 0) next
			text = $0
			sub(/^[^;]*;/, "", text)
			printf "[%12.6f] %s\n", field[3] / 1000000, text
		}'
}
kmsg_last() {
	dd if=/dev/kmsg bs=8192 iflag=nonblock 2>/dev/null | awk -F '[,;]' '/^[^ ]/ { last = $2 } END { print last + 0 }'
}
log_mark() { mark=$(kmsg_last); }
log_take() { kmsg_since "$mark" >"$1"; }

# bpftrace and perf run where they are installed: on a host, the machine itself.
in_root() { "$@"; }
ROOT_KD=$KD

event booted - "$(uname -r)"
case $kind in
kmod) run_sample "$name" "$index" ;;
tracefs) run_script "$name" "$index" ;;
bpftrace) run_bpftrace "$name" "$index" ;;
perf) run_script "$name" "$index" root ;;
bcc) run_twin "$name" "$index" "$5" "$6" ;;
*) echo "agent_host.sh: unknown kind $kind" >&2 && exit 2 ;;
esac
event done - "$index"
