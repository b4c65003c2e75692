#!/bin/sh
# kretprobe_maxactive_tracefs - the tracefs twin of kretprobe_maxactive:
# a return probe event with a single instance (r1:) on hrtimer_nanosleep(),
# while four tasks sleep at once; kprobe_profile counts the misses.
set -eu
T=/sys/kernel/tracing
I=$T/instances/kretprobe_maxactive_tracefs
EVENT=kd/kretprobe_maxactive
say() { echo "kretprobe_maxactive_tracefs: $*"; }

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

echo "r1:$EVENT hrtimer_nanosleep ret=\$retval:s64" >>$T/kprobe_events
say "r1:$EVENT hrtimer_nanosleep, maxactive 1"
mkdir $I
echo 1 >$I/events/$EVENT/enable
for i in 1 2 3 4; do sleep 1 & done
wait
echo 0 >$I/events/$EVENT/enable
grep -v '^#' $I/trace
awk '$1 == "kretprobe_maxactive" { print "kretprobe_maxactive: " $2 " hits, " $3 " missed" }' \
	$T/kprobe_profile | while read -r line; do say "$line"; done
