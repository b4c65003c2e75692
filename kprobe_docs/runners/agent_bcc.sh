#!/bin/busybox sh
# kprobe-docs bcc guest agent: /init of a bcc boot's initramfs.
#
# Loads the 9p modules listed in /modules/order, mounts the release's build
# chroot (shared read-only by the host, mount tag kdroot) on /newroot and
# starts twin_runner.py there with the release's python3 and bcc: one process
# that compiles every twin of the plan once, then attaches each in turn.  For
# each twin, from the index given by kd.start=, the agent waits until it is
# attached, runs its trigger with busybox, snapshots the kprobes list, lets it
# detach and report, and collects its output and the kernel log.  A bpftrace
# twin runs on its own, with the release's bpftrace (lib.sh's run_bpftrace),
# and so does a perf script, with the release's perf (lib.sh's run_script).
# It reports on the serial console with the markers of /kd/lib.sh.

/bin/busybox mkdir -p /bin /proc /sys /dev /tmp /newroot
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# What udev makes on a real system and devtmpfs does not: bpftrace's clang writes through /dev/fd.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
mount -t tmpfs tmpfs /tmp
export PATH=/bin

KD=/kd T=/tmp
. /kd/lib.sh
# A failure before any twin can run: say why on the console and stop.
fatal() {
	echo "kprobe-docs: cannot start the bcc guest: $*"
	poweroff -f
}

start=$(start_index)

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

event booted - "$(uname -r)"

# No LANG: every program would look for per-category locale files, failed
# opens that the failed-open twin would report.
in_root() { chroot $r /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }
ROOT_KD=/tmp/kd

# The bcc twins still to run go to the twin runner; bpftrace twins (NAME.bt) and perf scripts (NAME.sh) run on
# their own.
# In mode "main" each runs alone, through its own main() (run_twin_main).
mode=$(cat /kd/bcc-mode)
tail -n +$((start + 1)) /kd/plan | while read -r name; do
	[ -e "/kd/$name/$name.py" ] && [ "$mode" != main ] && echo "$name"
done >$r/tmp/kd/plan.run
each=
[ "$mode" = compile-each ] && each=--compile-each
runner=
if [ -s $r/tmp/kd/plan.run ]; then
	# Compiling every twin under TCG takes 20-75 s: ask the host for more time than between samples.
	event setup - 600
	(
		in_root python3 /tmp/kd/twin_runner.py --plan /tmp/kd/plan.run --dir /tmp/kd/run --timeout 900 $each
		echo $? >$run/exit
	) >$run/runner.out 2>&1 &
	runner=$!
	if wait_for $run/compiled $runner; then
		emit - bcc-runner $run/runner.out
		shown=$(wc -l <$run/runner.out)
	fi
fi

i=0
while read -r name; do
	if [ "$i" -lt "$start" ]; then
		:
	elif [ -e "/kd/$name/$name.bt" ]; then
		run_bpftrace "$name" "$i" || poweroff -f
	elif [ -e "/kd/$name/$name.sh" ]; then
		run_script "$name" "$i" root || poweroff -f
	elif [ "$mode" = main ]; then
		run_twin_main "$name" "$i" || poweroff -f
	else
		run_twin "$name" "$i" $run $runner || poweroff -f
	fi
	i=$((i + 1))
done </kd/plan
event done - "$i"
poweroff -f
