// SPDX-License-Identifier: GPL-2.0
/* API probe: the fault_handler member of struct kprobe (removed in 5.14). */
#include <linux/kprobes.h>
#include <linux/module.h>

static int on_fault(struct kprobe *p, struct pt_regs *regs, int trapnr)
{
	return 0;
}

static struct kprobe probe = { .fault_handler = on_fault };

static int __init api_init(void)
{
	return probe.fault_handler ? 0 : -EINVAL;
}

module_init(api_init);
MODULE_DESCRIPTION("kprobe-docs API probe: fault_handler");
MODULE_LICENSE("GPL");
