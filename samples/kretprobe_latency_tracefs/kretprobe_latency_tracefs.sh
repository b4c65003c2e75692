#!/bin/sh
# kretprobe_latency_tracefs - the duration of each kernel_clone() call,
# as kretprobe_example measures it, computed by the tracing subsystem:
# probe events at entry and return, paired by hist triggers into a
# synthetic event.  Needs CONFIG_HIST_TRIGGERS.
set -eu
T=/sys/kernel/tracing
I=$T/instances/kretprobe_latency_tracefs
say() { echo "kretprobe_latency_tracefs: $*"; }

ENTRY='hist:keys=common_pid:start=common_timestamp'
RETURN='hist:keys=common_pid:ns=common_timestamp-$start:onmatch(kd.clone_entry).trace(kd_clone_latency,pid,$ns)'

# error_log keeps the last 8 tracing errors, older ones too: on failure, show what it
# gained after the mark (all of it if the marked entry was pushed out).
mark_errors() { LAST_ERROR=$(grep '^\[' $T/error_log 2>/dev/null | tail -n 1); }
new_errors() {
	grep -qxF "$LAST_ERROR" $T/error_log 2>/dev/null || LAST_ERROR=
	awk -v last="$LAST_ERROR" '/^\[/ { show = seen || last == ""; if ($0 == last) seen = 1 } show' \
		$T/error_log 2>/dev/null
}

cleanup() {
	status=$?
	set +e
	if [ -d $I ]; then # triggers first: the synthetic event is in use until they go
		echo "!$RETURN" >>$I/events/kd/clone_return/trigger
		echo "!$ENTRY" >>$I/events/kd/clone_entry/trigger
		rmdir $I
	fi
	if grep -q '^kd_clone_latency' $T/synthetic_events; then
		echo '!kd_clone_latency' >>$T/synthetic_events
	fi
	for event in kd/clone_return kd/clone_entry; do
		if grep -q ":$event " $T/kprobe_events; then
			echo "-:$event" >>$T/kprobe_events
		fi
	done
	if [ $status -ne 0 ]; then
		new_errors >&2
	fi
}
trap cleanup EXIT
mark_errors

echo 'p:kd/clone_entry kernel_clone' >>$T/kprobe_events
echo 'r20:kd/clone_return kernel_clone pid=$retval:s32' >>$T/kprobe_events
echo 'kd_clone_latency s32 pid; u64 ns' >>$T/synthetic_events
mkdir $I
echo "$ENTRY" >>$I/events/kd/clone_entry/trigger
echo "$RETURN" >>$I/events/kd/clone_return/trigger
echo 1 >$I/events/synthetic/kd_clone_latency/enable
say "kernel_clone entry and return paired by pid in synthetic event kd_clone_latency"
/bin/true
/bin/true
echo 0 >$I/events/synthetic/kd_clone_latency/enable
grep -v '^#' $I/trace
