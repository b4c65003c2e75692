#!/bin/sh
# kprobe_optimized_tracefs - the tracefs twin of kprobe_optimized: a probe
# event inside vfs_read(), at the first offset past 16 that takes a probe,
# enabled, and the kprobes list once the probe is optimized (at most 5 s).
set -eu
T=/sys/kernel/tracing
I=$T/instances/kprobe_optimized_tracefs
EVENT=kd/kprobe_optimized
LIST=/sys/kernel/debug/kprobes/list
say() { echo "kprobe_optimized_tracefs: $*"; }

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

offset=17
until echo "p:$EVENT vfs_read+$offset" >>$T/kprobe_events 2>/dev/null; do
	offset=$((offset + 1))
	[ $offset -lt 96 ] || { echo "no offset of vfs_read takes a probe" >&2 && exit 1; }
done
mark_errors # the offsets refused before it were foreseen
say "p:$EVENT vfs_read+$offset, the first offset past 16 that takes a probe"
mkdir $I
echo 1 >$I/events/$EVENT/enable
cat /proc/version >/dev/null
tenths=0
if [ -e /proc/sys/debug/kprobes-optimization ]; then
	until grep -q ' vfs_read+.*\[OPTIMIZED\]' $LIST || [ $tenths -ge 50 ]; do
		sleep 0.1
		tenths=$((tenths + 1))
	done
fi
say "the kprobes list:"
grep ' vfs_read+' $LIST
echo 0 >$I/events/$EVENT/enable
awk '$1 == "kprobe_optimized" { print "kprobe_optimized: " $2 " hits, " $3 " missed" }' \
	$T/kprobe_profile | while read -r line; do say "$line"; done
