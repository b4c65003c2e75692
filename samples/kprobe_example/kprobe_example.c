// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe_example - a pre-handler and a post-handler on one kernel function.
 *
 * The function to probe is a module parameter.  register_kprobe() resolves
 * kp.symbol_name itself, so the module needs no kallsyms_lookup_name().
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/kallsyms.h>
#include <linux/kprobes.h>
#include <linux/module.h>

static char symbol[KSYM_NAME_LEN] = "kernel_clone";
module_param_string(symbol, symbol, sizeof(symbol), 0444);
MODULE_PARM_DESC(symbol, "the kernel function to probe");

static atomic_t pre_hits = ATOMIC_INIT(0);
static atomic_t post_hits = ATOMIC_INIT(0);

/* Runs just before the probed instruction; the first hit is logged. */
static int handler_pre(struct kprobe *p, struct pt_regs *regs)
{
	if (atomic_inc_return(&pre_hits) == 1)
		pr_info("pre_handler: %s hit, ip = %pS\n", p->symbol_name,
			(void *)instruction_pointer(regs));
	return 0;
}
NOKPROBE_SYMBOL(handler_pre);

/* Runs after the probed instruction has been single-stepped or emulated. */
static void handler_post(struct kprobe *p, struct pt_regs *regs,
			 unsigned long flags)
{
	if (atomic_inc_return(&post_hits) == 1)
		pr_info("post_handler: %s done, flags = 0x%lx\n", p->symbol_name,
			flags);
}
NOKPROBE_SYMBOL(handler_post);

static struct kprobe kp = {
	.symbol_name = symbol,
	.pre_handler = handler_pre,
	.post_handler = handler_post,
};

static int __init kprobe_example_init(void)
{
	int ret;

	ret = register_kprobe(&kp);
	if (ret < 0) {
		pr_err("register_kprobe on %s failed: %d\n", symbol, ret);
		return ret;
	}
	pr_info("planted kprobe at %pS\n", kp.addr);
	return 0;
}

static void __exit kprobe_example_exit(void)
{
	unregister_kprobe(&kp);
	pr_info("kprobe at %s removed: %d pre, %d post handler calls\n",
		symbol, atomic_read(&pre_hits), atomic_read(&post_hits));
}

module_init(kprobe_example_init);
module_exit(kprobe_example_exit);
MODULE_DESCRIPTION("kprobe with pre- and post-handler on a chosen function");
MODULE_LICENSE("GPL");
