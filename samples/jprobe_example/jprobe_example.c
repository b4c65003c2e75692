// SPDX-License-Identifier: GPL-2.0
/*
 * jprobe_example - a jumper probe on do_fork(), as written for 2.6 kernels.
 *
 * HISTORICAL: this does not build on any kernel since 4.18.  The handler
 * jdo_fork() has the prototype of do_fork(); kprobes entered it with the
 * registers and stack of the probed call, so the arguments simply appear
 * as the handler's parameters, and jprobe_return() hands control back.
 * Like the 2.6-era original it has no NOKPROBE_SYMBOL(), which came later.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kallsyms.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/sched.h>

/* Same arguments as do_fork() in 2.6.x. */
static long jdo_fork(unsigned long clone_flags, unsigned long stack_start,
		     struct pt_regs *regs, unsigned long stack_size,
		     int __user *parent_tidptr, int __user *child_tidptr)
{
	pr_info("do_fork: clone_flags 0x%lx, stack_size 0x%lx\n",
		clone_flags, stack_size);
	/* Always end a jprobe handler here, never with a plain return. */
	jprobe_return();
	return 0;
}

static struct jprobe fork_jprobe = {
	.entry = (kprobe_opcode_t *)jdo_fork,
};

static int __init jprobe_example_init(void)
{
	int ret;

	fork_jprobe.kp.addr =
		(kprobe_opcode_t *)kallsyms_lookup_name("do_fork");
	if (!fork_jprobe.kp.addr) {
		pr_err("do_fork not found\n");
		return -ENOENT;
	}
	ret = register_jprobe(&fork_jprobe);
	if (ret < 0) {
		pr_err("register_jprobe failed: %d\n", ret);
		return ret;
	}
	pr_info("jprobe at %p, handler %p\n", fork_jprobe.kp.addr,
		fork_jprobe.entry);
	return 0;
}

static void __exit jprobe_example_exit(void)
{
	unregister_jprobe(&fork_jprobe);
	pr_info("jprobe removed\n");
}

module_init(jprobe_example_init);
module_exit(jprobe_example_exit);
MODULE_DESCRIPTION("historical jprobe on do_fork (2.6-era API)");
MODULE_LICENSE("GPL");
