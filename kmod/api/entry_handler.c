// SPDX-License-Identifier: GPL-2.0
/* API probe: struct kretprobe's entry_handler and data_size (2.6.25), and ri->data. */
#include <linux/kprobes.h>
#include <linux/module.h>

static int on_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	return ri->data[0];
}

static struct kretprobe probe = {
	.entry_handler = on_entry,
	.data_size = sizeof(long),
};

static int __init api_init(void)
{
	return probe.entry_handler && probe.data_size ? 0 : -EINVAL;
}

module_init(api_init);
MODULE_DESCRIPTION("kprobe-docs API probe: entry_handler");
MODULE_LICENSE("GPL");
