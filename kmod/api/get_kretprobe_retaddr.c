// SPDX-License-Identifier: GPL-2.0
/* API probe: get_kretprobe_retaddr(), the return address of a kretprobe instance (5.18+). */
#include <linux/kprobes.h>
#include <linux/module.h>

static int on_return(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	return get_kretprobe_retaddr(ri) ? 0 : 1;
}

static struct kretprobe probe = { .handler = on_return };

static int __init api_init(void)
{
	return probe.handler ? 0 : -EINVAL;
}

module_init(api_init);
MODULE_DESCRIPTION("kprobe-docs API probe: get_kretprobe_retaddr");
MODULE_LICENSE("GPL");
