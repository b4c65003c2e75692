#!/bin/sh
# kprobe_example_tracefs - the tracefs twin of kprobe_example: a probe
# event on kernel_clone() with fetch arguments, defined in kprobe_events.
# Needs root and a kernel with CONFIG_KPROBE_EVENTS; prints the events
# recorded while /bin/true runs, then removes the probe.
set -eu
T=/sys/kernel/tracing
I=$T/instances/kprobe_example_tracefs
EVENT=kd/kprobe_example
say() { echo "kprobe_example_tracefs: $*"; }

case $(uname -m) in
x86_64) REG=%di ;;
i?86) REG=%ax ;;
aarch64) REG=%x0 ;;
*) echo "no register name for the first argument on $(uname -m)" >&2 && exit 1 ;;
esac

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
	if grep -q "^p:$EVENT " $T/kprobe_events; then
		echo "-:$EVENT" >>$T/kprobe_events
	fi
	if [ $status -ne 0 ]; then
		new_errors >&2
	fi
}
trap cleanup EXIT
mark_errors

PROBE="p:$EVENT kernel_clone reg=$REG:x64 arg1=\$arg1:x64 flags=+0(\$arg1):x64 comm=\$comm"
if ! echo "$PROBE jiffies=@jiffies_64:u64" >>$T/kprobe_events 2>/dev/null; then
	echo "$PROBE" >>$T/kprobe_events
	say "the kernel refused @jiffies_64; the event is defined without it"
	mark_errors # that refusal was foreseen
fi
say "probe $EVENT on kernel_clone, first argument in $REG"
mkdir $I
echo 1 >$I/events/$EVENT/enable
/bin/true
echo 0 >$I/events/$EVENT/enable
grep -v '^#' $I/trace
awk '$1 == "kprobe_example" { print "kprobe_example: " $2 " hits, " $3 " missed" }' \
	$T/kprobe_profile | while read -r line; do say "$line"; done
rmdir $I
echo "-:$EVENT" >>$T/kprobe_events
say "probe $EVENT removed"
