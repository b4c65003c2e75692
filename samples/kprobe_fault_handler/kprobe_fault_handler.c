// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe_fault_handler - a kprobe with a fault_handler, as modules set it
 * up to 5.13.  It does not build on later kernels.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kprobes.h>
#include <linux/module.h>

static int kfh_fault(struct kprobe *p, struct pt_regs *regs, int trapnr)
{
	pr_info("fault %d in a handler\n", trapnr);
	return 0;
}

static struct kprobe kfh_probe = {
	.symbol_name = "kernel_clone",
	.fault_handler = kfh_fault,
};

static int __init kprobe_fault_handler_init(void)
{
	return register_kprobe(&kfh_probe);
}

static void __exit kprobe_fault_handler_exit(void)
{
	unregister_kprobe(&kfh_probe);
}

module_init(kprobe_fault_handler_init);
module_exit(kprobe_fault_handler_exit);
MODULE_DESCRIPTION("a kprobe with a fault_handler, which no longer exists");
MODULE_LICENSE("GPL");
