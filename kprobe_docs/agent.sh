#!/bin/busybox sh
# kprobe-docs guest agent: /init of the verification initramfs.
#
# Runs the samples listed in /kd/plan, starting at the index given by
# kd.start= on the kernel command line, and reports on the serial console
# with lines the host parses:
#   @@KD <event> <sample> <value>   one event
#   @@KL <sample> <section> <line>  one line of captured output
# Everything else on the console is the kernel's own output.

/bin/busybox mkdir -p /bin /proc /sys /dev /tmp
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
export PATH=/bin

event() { echo "@@KD $*"; }

# Print a file's lines tagged with the sample and section they belong to.
emit() {
	sed "s/^/@@KL $1 $2 /" "$3"
}

start=0
for word in $(cat /proc/cmdline); do
	case "$word" in
	kd.start=*) start=${word#kd.start=} ;;
	esac
done

# Load, unload and collect the kernel log for one cycle.  The first cycle also
# runs the trigger and snapshots the kprobes list while the module is loaded.
cycle() {
	name=$1 n=$2 dir=/kd/$1
	dmesg -c >/dev/null
	# shellcheck disable=SC2046 # params are name=value words, split on purpose
	insmod "$dir/$name.ko" $(cat "$dir/params") >"/tmp/insmod$n" 2>&1
	event insmod$n "$name" $?
	emit "$name" insmod$n "/tmp/insmod$n"
	if grep -q "^$name " /proc/modules; then
		if [ "$n" = 1 ]; then
			sh "$dir/trigger" >/tmp/trigger 2>&1
			event trigger "$name" $?
			emit "$name" trigger /tmp/trigger
			cat /sys/kernel/debug/kprobes/list >/tmp/list 2>&1
			emit "$name" kprobes /tmp/list
		fi
		rmmod "$name" >"/tmp/rmmod$n" 2>&1
		event rmmod$n "$name" $?
		emit "$name" rmmod$n "/tmp/rmmod$n"
	fi
	dmesg -c >"/tmp/log$n"
	emit "$name" log$n "/tmp/log$n"
}

# Taint bits after which the kernel is not trusted for the next sample:
# M (machine check), B (bad page), D (oops), W (warning), L (soft lockup).
BAD_TAINT=$(((1 << 4) | (1 << 5) | (1 << 7) | (1 << 9) | (1 << 14)))

event booted - "$(uname -r)"

# Facts about the kprobes interface of this kernel, reported once per boot.
k=/sys/kernel/debug/kprobes
emit - enabled $k/enabled
wc -l <$k/blacklist >/tmp/count
emit - blacklist-entries /tmp/count
head -n 5 $k/blacklist >/tmp/head
emit - blacklist-head /tmp/head
if [ -e /proc/sys/debug/kprobes-optimization ]; then
	cat /proc/sys/debug/kprobes-optimization >/tmp/opt
	emit - kprobes-optimization /tmp/opt
fi
i=0
while read -r name; do
	if [ "$i" -ge "$start" ]; then
		event begin "$name" "$i"
		cycle "$name" 1
		taint=$(cat /proc/sys/kernel/tainted)
		[ $((taint & BAD_TAINT)) = 0 ] && cycle "$name" 2
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
