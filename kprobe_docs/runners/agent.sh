#!/bin/busybox sh
# kprobe-docs guest agent: /init of the verification initramfs.
#
# Runs the module samples and tracefs scripts listed in /kd/plan, starting at the index given by
# kd.start= on the kernel command line, with the steps of /kd/lib.sh, and
# reports on the serial console with the markers described there.
# Everything else on the console is the kernel's own output.

/bin/busybox mkdir -p /bin /proc /sys /dev /tmp
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
mount -t tmpfs tmpfs /tmp
export PATH=/bin
KD=/kd T=/tmp
. /kd/lib.sh

start=$(start_index)
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
		if [ -e "/kd/$name/$name.sh" ]; then
			run_script "$name" "$i" || poweroff -f
		else
			run_sample "$name" "$i" || poweroff -f
		fi
	fi
	i=$((i + 1))
done </kd/plan
event done - "$i"
poweroff -f
