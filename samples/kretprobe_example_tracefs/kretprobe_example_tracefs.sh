#!/bin/sh
# kretprobe_example_tracefs - the tracefs twin of kretprobe_example: a
# return probe event on kernel_clone() recording the returned PID and,
# where the kernel can (6.9 and later), an argument saved at entry.
set -eu
T=/sys/kernel/tracing
I=$T/instances/kretprobe_example_tracefs
EVENT=kd/kretprobe_example
say() { echo "kretprobe_example_tracefs: $*"; }

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
	[ -d $I ] && rmdir $I
	if grep -q ":$EVENT " $T/kprobe_events; then
		echo "-:$EVENT" >>$T/kprobe_events
	fi
	if [ $status -ne 0 ]; then
		new_errors >&2
	fi
}
trap cleanup EXIT
mark_errors

PROBE="r20:$EVENT kernel_clone pid=\$retval:s32"
if echo "$PROBE flags=+0(\$arg1):x64" >>$T/kprobe_events 2>/dev/null; then
	say "$PROBE flags=+0(\$arg1):x64"
else
	echo "$PROBE" >>$T/kprobe_events
	say "$PROBE (this kernel has no \$argN in return probes)"
	mark_errors # that refusal was foreseen
fi
mkdir $I
echo 1 >$I/events/$EVENT/enable
/bin/true
/bin/true
echo 0 >$I/events/$EVENT/enable
grep -v '^#' $I/trace
awk '$1 == "kretprobe_example" { print "kretprobe_example: " $2 " hits, " $3 " missed" }' \
	$T/kprobe_profile | while read -r line; do say "$line"; done
