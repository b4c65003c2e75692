#!/bin/sh
# kretprobe_failed_open_tracefs - the tracefs twin of kretprobe_failed_open:
# a return probe event on the kernel's open path, filtered to the calls
# that return an error, and an entry probe event fetching the path, while
# cat opens a file that does not exist.
set -eu
T=/sys/kernel/tracing
I=$T/instances/kretprobe_failed_open_tracefs
EVENT=kd/kretprobe_failed_open
PATH_EVENT=kd/kretprobe_failed_open_path
say() { echo "kretprobe_failed_open_tracefs: $*"; }

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
	for event in $EVENT $PATH_EVENT; do
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

# $retval is the return register, as wide as a long and fetched unsigned: read as
# s64 on a 32-bit kernel, -2 would be 4294967294 and pass no error filter.
case $(uname -m) in
i?86 | arm*) RET=s32 ;;
*) RET=s64 ;;
esac
func=
for candidate in do_file_open do_sys_openat2; do
	if echo "r16:$EVENT $candidate ret=\$retval:$RET comm=\$comm" \
		>>$T/kprobe_events 2>/dev/null; then
		func=$candidate
		break
	fi
done
[ -n "$func" ] || { echo "no open path to probe" >&2 && exit 1; }
mark_errors # a function refused before it was foreseen
say "watching failed opens in $func"
# The path: do_sys_openat2() gets the user's pointer, do_file_open() a
# struct filename, whose first member points to the kernel's copy.
case $func in
do_file_open) path='+0(+0($arg2)):string' ;;
*) path='+0($arg2):ustring' ;;
esac
echo "p:$PATH_EVENT $func path=$path" >>$T/kprobe_events
mkdir $I
echo 'ret >= -4095 && ret < 0' >$I/events/$EVENT/filter
echo 'path == "/no/such/file"' >$I/events/$PATH_EVENT/filter
echo 1 >$I/events/$EVENT/enable
echo 1 >$I/events/$PATH_EVENT/enable
cat /no/such/file 2>/dev/null || true
echo 0 >$I/events/$PATH_EVENT/enable
echo 0 >$I/events/$EVENT/enable
grep -v '^#' $I/trace
awk '$1 == "kretprobe_failed_open" { print "kretprobe_failed_open: " $2 " hits, " $3 " missed" }' \
	$T/kprobe_profile | while read -r line; do say "$line"; done
