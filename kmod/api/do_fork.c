// SPDX-License-Identifier: GPL-2.0
/* API probe: _do_fork() declared (renamed kernel_clone() in 5.10). */
#include <linux/module.h>
#include <linux/sched/task.h>

static typeof(&_do_fork) fork_entry;

static int __init api_init(void)
{
	return fork_entry ? -EINVAL : 0;
}

module_init(api_init);
MODULE_DESCRIPTION("kprobe-docs API probe: do_fork");
MODULE_LICENSE("GPL");
