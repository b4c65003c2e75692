# kprobe-docs agent library: what every agent does for a sample, sourced by
# the guests' /init (agent.sh, agent_bcc.sh) and by the host agent
# (agent_host.sh).  It reports with lines the runner parses, on the serial
# console in a guest, on standard output on a host:
#   @@KD <event> <sample> <value>   one event
#   @@KL <sample> <section> <line>  one line of captured output
# Set before sourcing: KD, the directory holding each sample's files
# (KD/<name>/), and T, a scratch directory.

event() { echo "@@KD $*"; }

# Print a file's lines tagged with the sample and section they belong to.
emit() { sed "s/^/@@KL $1 $2 /" "$3"; }

# Keep a file's first and last CAP bytes and say how many were cut between:
# a flooding trigger must not flood the console and the results.
CAP=16384
cap() {
	size=$(wc -c <"$1")
	if [ "$size" -gt $((2 * CAP)) ]; then
		{
			head -c $CAP "$1"
			echo
			echo "[kprobe-docs: $((size - 2 * CAP)) bytes cut here]"
			tail -c $CAP "$1"
		} >"$1.cap"
		mv "$1.cap" "$1"
	fi
}

# Taint bits after which the kernel is not trusted for the next sample:
# M (machine check), B (bad page), D (oops), W (warning), L (soft lockup).
BAD_TAINT=$(((1 << 4) | (1 << 5) | (1 << 7) | (1 << 9) | (1 << 14)))
KPROBES=/sys/kernel/debug/kprobes
EVENTS=/sys/kernel/tracing/kprobe_events

# The kernel log: log_mark forgets what is there, log_take FILE writes what
# came since.  A guest clears the ring buffer; the host agent redefines both.
log_mark() { dmesg -c >/dev/null; }
log_take() { dmesg -c >"$1"; }

# What a sample leaves behind is found by comparing the kprobe and synthetic
# events, the tracing instances and the kprobes list before and after it, one
# line per item, already worded as the leftover it would be.  A guest removes
# what it finds, so that the next sample starts clean; the host agent sets
# KEEP_LEFTOVERS=1: a real machine keeps them, for its owner to see, and its
# run stops.  Probes are compared by address, type and symbol: a flag such as
# [DISABLED] may change meanwhile.  One awk reads them all (a file that is
# missing, such as synthetic_events on a kernel without them, reads as
# empty): under an emulated CPU every process started costs, twice a sample.
TRACING=/sys/kernel/tracing
snapshot() {
	ls $TRACING/instances >"$T/instances" 2>/dev/null
	awk -v events=$EVENTS -v synthetic=$TRACING/synthetic_events -v instances="$T/instances" \
		-v list=$KPROBES/list 'BEGIN {
		while ((getline line <events) > 0) print "kprobe_events entry still defined: " line
		while ((getline line <synthetic) > 0) print "synthetic event still defined: " line
		while ((getline line <instances) > 0) print "tracing instance still present: " line
		while ((getline line <list) > 0) {
			split(line, word, " ")
			print "kprobe still registered: " word[1], word[2], word[3]
		}
	}' >"$T/$1"
}
# Lines of file $2 that file $1 does not hold (grep -f would read an empty $1 as a pattern matching all).
added() { awk 'FILENAME == ARGV[1] { seen[$0] = 1; next } !($0 in seen)' "$1" "$2"; }
leftovers() {
	name=$1
	snapshot after
	: >"$T/left"
	if grep -q "^$name " /proc/modules; then
		echo "module $name still loaded" >>"$T/left"
	fi
	added "$T/before" "$T/after" >>"$T/left"
	event leftover "$name" "$(wc -l <"$T/left")"
	emit "$name" leftover "$T/left"
	if [ -s "$T/left" ] && [ -z "${KEEP_LEFTOVERS:-}" ]; then
		remove_leftovers
	fi
	:
}
# An instance goes first (with it its event triggers), then the synthetic
# events that a trigger used, then the probe events, disabled everywhere.
remove_leftovers() {
	sed -n 's/^tracing instance still present: //p' "$T/left" | while read -r dir; do
		rmdir "$TRACING/instances/$dir"
	done
	sed -n 's/^synthetic event still defined: \([^ ]*\).*/!\1/p' "$T/left" >>$TRACING/synthetic_events
	echo 0 >$TRACING/events/enable 2>/dev/null
	sed -n 's/^kprobe_events entry still defined: [pr][0-9]*:\([^ ]*\).*/-:\1/p' "$T/left" >>$EVENTS
}

# The index of the first sample to run, from kd.start= on the kernel command line.
start_index() {
	for word in $(cat /proc/cmdline); do
		case "$word" in
		kd.start=*) echo "${word#kd.start=}" && return ;;
		esac
	done
	echo 0
}

# Load, unload and collect the kernel log for one cycle of a module sample.
# The first cycle also runs the trigger and snapshots the kprobes list while
# the module is loaded.  Each step is announced first, so that a hang names it.
cycle() {
	name=$1 n=$2 dir=$KD/$1
	log_mark
	event step "$name" insmod$n
	# shellcheck disable=SC2046 # params are name=value words, split on purpose
	insmod "$dir/$name.ko" $(cat "$dir/params") >"$T/insmod$n" 2>&1
	event insmod$n "$name" $?
	emit "$name" insmod$n "$T/insmod$n"
	if grep -q "^$name " /proc/modules; then
		if [ "$n" = 1 ]; then
			event step "$name" trigger
			sh "$dir/trigger" >"$T/trigger" 2>&1
			event trigger "$name" $?
			cap "$T/trigger"
			emit "$name" trigger "$T/trigger"
			event step "$name" kprobes
			cat $KPROBES/list >"$T/list" 2>&1
			emit "$name" kprobes "$T/list"
		fi
		event step "$name" rmmod$n
		rmmod "$name" >"$T/rmmod$n" 2>&1
		event rmmod$n "$name" $?
		emit "$name" rmmod$n "$T/rmmod$n"
	fi
	log_take "$T/log$n"
	emit "$name" log$n "$T/log$n"
}

# The taint after a sample; returns 1 when it says the kernel is damaged.
end_sample() {
	taint=$(cat /proc/sys/kernel/tainted)
	event taint "$1" "$taint"
	event end "$1" "$2"
	if [ $((taint & BAD_TAINT)) != 0 ]; then
		event dirty "$1" "$taint"
		return 1
	fi
	return 0
}

# One module sample, both cycles (the second only on an undamaged kernel),
# from its begin event to its end; returns 1 when the kernel is damaged.
run_sample() {
	event begin "$1" "$2"
	snapshot before
	cycle "$1" 1
	taint=$(cat /proc/sys/kernel/tainted)
	[ $((taint & BAD_TAINT)) = 0 ] && cycle "$1" 2
	leftovers "$1"
	end_sample "$1" "$2"
}

# After a sample whose output is in $T/out (a script, a bpftrace or bcc
# twin): report it and the kernel log, check what it left behind and end it.
# Returns 1 when the kernel is damaged.
finish_output() {
	cap "$T/out"
	emit "$1" out "$T/out"
	log_take "$T/dmesg"
	emit "$1" dmesg "$T/dmesg"
	leftovers "$1"
	end_sample "$1" "$2"
}

# One tracefs or perf script, NAME INDEX [root], run as a reader runs it: it
# defines its probe events, runs its own trigger, prints the trace and removes
# its events.  With "root" it runs where perf is installed, with in_root and
# ROOT_KD as for bpftrace.  Returns 1 when the kernel is damaged.
run_script() {
	name=$1
	event begin "$name" "$2"
	snapshot before
	log_mark
	event step "$name" script
	if [ "${3:-}" = root ]; then
		in_root sh "$ROOT_KD/$name/$name.sh" >"$T/out" 2>&1
	else
		sh "$KD/$name/$name.sh" >"$T/out" 2>&1
	fi
	event script "$name" $?
	finish_output "$name" "$2"
}

# One bpftrace twin, NAME INDEX, run as a reader runs it: bpftrace attaches
# the program's probes, then starts the trigger (-c) and, once the trigger
# has exited, detaches and prints its END output.  in_root runs a command
# where bpftrace is installed (a guest's release root, or the machine) and
# ROOT_KD is KD as that command sees it.  Returns 1 when the kernel is damaged.
run_bpftrace() {
	name=$1
	event begin "$name" "$2"
	snapshot before
	log_mark
	event step "$name" run
	in_root bpftrace -c "/bin/sh $ROOT_KD/$name/trigger" "$ROOT_KD/$name/$name.bt" >"$T/out" 2>&1
	event run "$name" $?
	finish_output "$name" "$2"
}

# One bcc twin, NAME INDEX, through its own main(), as a reader runs it:
# python3 NAME.py attaches, polls for 10 seconds and detaches.  It counts as
# attached once it printed its first "NAME: " line, which every twin's
# attach() says last; the trigger runs then, and the twin ends by itself.
# in_root and ROOT_KD as for bpftrace.
run_twin_main() {
	name=$1
	event begin "$name" "$2"
	snapshot before
	log_mark
	event step "$name" attach
	in_root python3 "$ROOT_KD/$name/$name.py" >"$T/out" 2>&1 &
	pid=$!
	while kill -0 $pid 2>/dev/null && ! grep -q "^$name: " "$T/out"; do
		sleep 0.2
	done
	if kill -0 $pid 2>/dev/null; then
		event attach "$name" 0
		event step "$name" trigger
		sh "$KD/$name/trigger" >"$T/trigger" 2>&1
		event trigger "$name" $?
		cap "$T/trigger"
		emit "$name" trigger "$T/trigger"
		event step "$name" kprobes
		cat $KPROBES/list >"$T/list" 2>&1
		emit "$name" kprobes "$T/list"
		event step "$name" detach
		wait $pid
		event detach "$name" $?
	else # it ended before it was seen attached: a twin whose attach() does all its work
		wait $pid
		rc=$?
		event attach "$name" $rc
		[ $rc = 0 ] && event detach "$name" 0
	fi
	finish_output "$name" "$2"
}

# wait_for FILE PID: until FILE exists or process PID is gone.  The runner
# enforces the deadlines; a second look catches a file written just before exit.
wait_for() {
	while [ ! -e "$1" ] && kill -0 "$2" 2>/dev/null; do
		sleep 0.1
	done
	[ -e "$1" ]
}

# What the twin runner (its output in RUN/runner.out) said since it was last
# shown, and how it ended if it did: the only trace of a runner that died in
# the middle of a twin.
shown=0
runner_news() {
	tail -n +$((shown + 1)) "$1/runner.out"
	shown=$(wc -l <"$1/runner.out")
	[ -e "$1/exit" ] && echo "# the twin runner exited $(cat "$1/exit")"
	:
}

# One bcc twin, NAME INDEX RUN RUNNER: the twin runner (pid RUNNER), which
# shares the handshake directory RUN, attaches it on our "go", the trigger
# runs here, and it detaches on our "stop" and reports.  Returns 1 when the
# kernel is damaged.
run_twin() {
	name=$1 run=$3 runner=$4
	event begin "$name" "$2"
	snapshot before
	log_mark
	touch "$run/out.$name"
	event step "$name" attach
	touch "$run/go.$name"
	if wait_for "$run/ready.$name" "$runner"; then
		event attach "$name" "$(cat "$run/ready.$name")"
	else
		event attach "$name" missing
	fi
	if [ "$(cat "$run/ready.$name" 2>/dev/null)" = 0 ]; then
		event step "$name" trigger
		sh "$KD/$name/trigger" >"$T/trigger" 2>&1
		event trigger "$name" $?
		cap "$T/trigger"
		emit "$name" trigger "$T/trigger"
		event step "$name" kprobes
		cat $KPROBES/list >"$T/list" 2>&1
		emit "$name" kprobes "$T/list"
	fi
	event step "$name" detach
	touch "$run/stop.$name"
	if wait_for "$run/done.$name" "$runner"; then
		event detach "$name" "$(cat "$run/done.$name")"
	else
		event detach "$name" missing
		runner_news "$run" >>"$run/out.$name"
	fi
	cp "$run/out.$name" "$T/out"
	finish_output "$name" "$2"
}
