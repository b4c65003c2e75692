// SPDX-License-Identifier: GPL-2.0
/* API probe: kernel_clone() declared (the name of _do_fork() since 5.10). */
#include <linux/module.h>
#include <linux/sched/task.h>

static typeof(&kernel_clone) fork_entry;

static int __init api_init(void)
{
	return fork_entry ? -EINVAL : 0;
}

module_init(api_init);
MODULE_DESCRIPTION("kprobe-docs API probe: kernel_clone");
MODULE_LICENSE("GPL");
