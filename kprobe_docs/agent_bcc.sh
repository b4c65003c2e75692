#!/bin/busybox sh
# kprobe-docs bcc guest agent: /init of a bcc boot's initramfs.
#
# Loads the 9p modules listed in /modules/order, mounts the release's build
# chroot (shared read-only by the host, mount tag kdroot) on /newroot and
# starts twin_runner.py there with the release's python3 and bcc: one process
# that compiles every twin of the plan once, then attaches each in turn.  For
# each twin, from the index given by kd.start=, the agent waits until it is
# attached, runs its trigger with busybox, snapshots the kprobes list, lets it
# detach and report, and collects its output and the kernel log.  It reports
# on the serial console like the module agent:
#   @@KD <event> <twin> <value>   one event
#   @@KL <twin> <section> <line>  one line of captured output

/bin/busybox mkdir -p /bin /proc /sys /dev /tmp /newroot
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
export PATH=/bin

event() { echo "@@KD $*"; }
emit() { sed "s/^/@@KL $1 $2 /" "$3"; }
# A failure before any twin can run: say why on the console and stop.
fatal() {
	echo "kprobe-docs: cannot start the bcc guest: $*"
	poweroff -f
}

start=0
for word in $(cat /proc/cmdline); do
	case "$word" in
	kd.start=*) start=${word#kd.start=} ;;
	esac
done

while read -r module; do
	insmod "/modules/$module.ko" || fatal "insmod $module failed"
done </modules/order
mount -t 9p -o "$(cat /modules/options)" kdroot /newroot || fatal "mounting the 9p root failed"
r=/newroot
mount -t proc proc $r/proc
mount -t sysfs sysfs $r/sys
mount --bind /dev $r/dev
mount -t debugfs debugfs $r/sys/kernel/debug
mount -t tracefs tracefs $r/sys/kernel/tracing 2>/dev/null
mount -t bpf bpf $r/sys/fs/bpf
mount -t tmpfs tmpfs $r/tmp
mount -t tmpfs tmpfs $r/run
mkdir -p $r/tmp/kd/run
cp -r /kd/. $r/tmp/kd/
run=$r/tmp/kd/run

BAD_TAINT=$(((1 << 4) | (1 << 5) | (1 << 7) | (1 << 9) | (1 << 14)))

event booted - "$(uname -r)"

# wait_for FILE PID: until FILE exists or process PID is gone.  The host
# enforces the deadlines; a second look catches a file written just before exit.
wait_for() {
	while [ ! -e "$1" ] && kill -0 "$2" 2>/dev/null; do
		sleep 0.1
	done
	[ -e "$1" ]
}

tail -n +$((start + 1)) /kd/plan >$r/tmp/kd/plan.run
each=
[ -e /kd/compile-each ] && each=--compile-each
# Compiling every twin under TCG takes 20-75 s: ask the host for more time than between samples.
event setup - 600
# No LANG: every program would look for per-category locale files, failed
# opens that the failed-open twin would report.
(
	chroot $r /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		python3 /tmp/kd/twin_runner.py --plan /tmp/kd/plan.run --dir /tmp/kd/run --timeout 900 $each
	echo $? >$run/exit
) >$run/runner.out 2>&1 &
runner=$!
shown=0
if wait_for $run/compiled $runner; then
	emit - bcc-runner $run/runner.out
	shown=$(wc -l <$run/runner.out)
fi

# What the runner said since it was last shown, and how it ended if it did:
# the only trace of a runner that died in the middle of a twin.
runner_news() {
	tail -n +$((shown + 1)) $run/runner.out
	shown=$(wc -l <$run/runner.out)
	[ -e $run/exit ] && echo "# the twin runner exited $(cat $run/exit)"
}

i=0
while read -r name; do
	if [ "$i" -ge "$start" ]; then
		event begin "$name" "$i"
		dmesg -c >/dev/null
		touch "$run/out.$name"
		touch "$run/go.$name"
		if wait_for "$run/ready.$name" $runner; then
			event attach "$name" "$(cat "$run/ready.$name")"
		else
			event attach "$name" missing
		fi
		if [ "$(cat "$run/ready.$name" 2>/dev/null)" = 0 ]; then
			sh "/kd/$name/trigger" >/tmp/trigger 2>&1
			event trigger "$name" $?
			emit "$name" trigger /tmp/trigger
			cat /sys/kernel/debug/kprobes/list >/tmp/list 2>&1
			emit "$name" kprobes /tmp/list
		fi
		touch "$run/stop.$name"
		if wait_for "$run/done.$name" $runner; then
			event detach "$name" "$(cat "$run/done.$name")"
		else
			event detach "$name" missing
			runner_news >>"$run/out.$name"
		fi
		emit "$name" out "$run/out.$name"
		dmesg -c >/tmp/dmesg
		emit "$name" dmesg /tmp/dmesg
		taint=$(cat /proc/sys/kernel/tainted)
		event taint "$name" "$taint"
		event end "$name" "$i"
		if [ $((taint & BAD_TAINT)) != 0 ]; then
			event dirty "$name" "$taint"
			poweroff -f
		fi
	fi
	i=$((i + 1))
done </kd/plan
event done - "$i"
poweroff -f
