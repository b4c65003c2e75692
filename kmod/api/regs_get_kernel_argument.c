// SPDX-License-Identifier: GPL-2.0
/* API probe: regs_get_kernel_argument(), a probed function's n-th argument from pt_regs. */
#include <linux/kprobes.h>
#include <linux/module.h>

static int on_hit(struct kprobe *p, struct pt_regs *regs)
{
	(void)regs_get_kernel_argument(regs, 0);
	return 0;
}

static struct kprobe probe = { .pre_handler = on_hit };

static int __init api_init(void)
{
	return probe.pre_handler ? 0 : -EINVAL;
}

module_init(api_init);
MODULE_DESCRIPTION("kprobe-docs API probe: regs_get_kernel_argument");
MODULE_LICENSE("GPL");
