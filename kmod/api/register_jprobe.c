// SPDX-License-Identifier: GPL-2.0
/*
 * API probe: register_jprobe() and struct jprobe (jprobes: stubs returning
 * -ENOSYS from 4.15, removed in 4.19).
 */
#include <linux/kprobes.h>
#include <linux/module.h>

static struct jprobe probe;

static int __init api_init(void)
{
	return register_jprobe(&probe);
}

module_init(api_init);
MODULE_DESCRIPTION("kprobe-docs API probe: register_jprobe");
MODULE_LICENSE("GPL");
