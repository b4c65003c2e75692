// SPDX-License-Identifier: GPL-2.0
/*
 * kretprobe_default - the number of instances the kernel prepares when
 * maxactive is 0.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cpumask.h>
#include <linux/kprobes.h>
#include <linux/kernel.h>
#include <linux/module.h>

static int krd_ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	return 0;
}
NOKPROBE_SYMBOL(krd_ret);

static struct kretprobe krd_probe = {
	.kp = { .symbol_name = "kernel_clone" },
	.handler = krd_ret,
	.maxactive = 0,		/* let the kernel choose */
};

static int __init kretprobe_default_init(void)
{
	unsigned int cpus = num_possible_cpus();
	int ret;

	ret = register_kretprobe(&krd_probe);
	if (ret < 0) {
		pr_err("register_kretprobe failed: %d\n", ret);
		return ret;
	}
	pr_info("maxactive 0 became %d; max(10, 2 x %u possible CPUs) = %u\n",
		krd_probe.maxactive, cpus, max(10U, 2 * cpus));
	return 0;
}

static void __exit kretprobe_default_exit(void)
{
	unregister_kretprobe(&krd_probe);
	pr_info("unloaded\n");
}

module_init(kretprobe_default_init);
module_exit(kretprobe_default_exit);
MODULE_DESCRIPTION("the default maxactive of a kretprobe");
MODULE_LICENSE("GPL");
