// SPDX-License-Identifier: GPL-2.0
/* API probe: fprobe, the ftrace-based function entry/exit probe (5.18), usable from a module. */
#include <linux/fprobe.h>
#include <linux/module.h>

#ifndef CONFIG_FPROBE
#error "CONFIG_FPROBE is not set: register_fprobe() is only a stub returning -EOPNOTSUPP"
#endif

static struct fprobe probe;

static int __init api_init(void)
{
	return register_fprobe(&probe, "kernel_clone", NULL);
}

module_init(api_init);
MODULE_DESCRIPTION("kprobe-docs API probe: fprobe");
MODULE_LICENSE("GPL");
