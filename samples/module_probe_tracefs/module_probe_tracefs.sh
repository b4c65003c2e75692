#!/bin/sh
# module_probe_tracefs - a probe event on a module's function (MODULE:SYMBOL),
# defined before the module is loaded, followed through two loads and an
# unload of the dummy network driver.
set -eu
T=/sys/kernel/tracing
I=$T/instances/module_probe_tracefs
EVENT=kd/dummy_setup
LIST=/sys/kernel/debug/kprobes/list
say() { echo "module_probe_tracefs: $*"; }

if grep -q '^dummy ' /proc/modules; then
	echo "dummy is loaded already; this script loads and unloads it itself" >&2
	exit 1
fi

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
	grep -q '^dummy ' /proc/modules && modprobe -r dummy
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

# The kprobes list line of the probe at $1, or the line naming dummy_setup.
probe_line() {
	awk -v addr="${1:-}" '$1 == addr || (addr == "" && $3 ~ /^dummy_setup\+/)' $LIST
}

echo "p:$EVENT dummy:dummy_setup" >>$T/kprobe_events
say "defined before dummy is loaded: $(probe_line | wc -l) kprobes on dummy_setup"
mkdir $I
echo 1 >$I/events/$EVENT/enable
# numdummies=1: systemd's modprobe.d sets 0, and then no device is set up.
modprobe dummy numdummies=1
line=$(probe_line)
say "loaded: $line"
modprobe -r dummy
say "unloaded: $(probe_line "${line%% *}")"
modprobe dummy numdummies=1
say "loaded again: $(probe_line)"
modprobe -r dummy
echo 0 >$I/events/$EVENT/enable
grep -v '^#' $I/trace || say "the trace is empty"
awk '$1 == "dummy_setup" { print "dummy_setup: " $2 " hits, " $3 " missed" }' \
	$T/kprobe_profile | while read -r hits; do say "$hits"; done
rmdir $I
echo "-:$EVENT" >>$T/kprobe_events
