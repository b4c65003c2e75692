// SPDX-License-Identifier: GPL-2.0
/* API probe: kallsyms_lookup_name() exported to modules (unexported in 5.7). */
#include <linux/kallsyms.h>
#include <linux/module.h>

static int __init api_init(void)
{
	return kallsyms_lookup_name("printk") ? 0 : -ENOENT;
}

module_init(api_init);
MODULE_DESCRIPTION("kprobe-docs API probe: kallsyms_lookup_name");
MODULE_LICENSE("GPL");
