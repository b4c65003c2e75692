// SPDX-License-Identifier: GPL-2.0
/*
 * kallsyms_lookup - finding a probe address with kallsyms_lookup_name(),
 * as modules did up to 5.6.  It does not link on later kernels.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kallsyms.h>
#include <linux/kprobes.h>
#include <linux/module.h>

static struct kprobe kal_probe;

static int __init kallsyms_lookup_init(void)
{
	kal_probe.addr = (kprobe_opcode_t *)kallsyms_lookup_name("kernel_clone");
	if (!kal_probe.addr)
		return -ENOENT;
	return register_kprobe(&kal_probe);
}

static void __exit kallsyms_lookup_exit(void)
{
	unregister_kprobe(&kal_probe);
}

module_init(kallsyms_lookup_init);
module_exit(kallsyms_lookup_exit);
MODULE_DESCRIPTION("kallsyms_lookup_name() in a module, which no longer links");
MODULE_LICENSE("GPL");
