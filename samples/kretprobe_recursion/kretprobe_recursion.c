// SPDX-License-Identifier: GPL-2.0
/*
 * kretprobe_recursion - a return probe on a recursive function.
 *
 * factorial() calls itself, so several of its calls are in flight in one
 * task at once, and all the inner ones return to the same address inside
 * factorial().  The return address cannot tell the levels apart; the
 * per-instance data can: the entry handler saves the argument in ri->data
 * and the return handler reads it back.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compiler.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/version.h>

/* The accessor came with rethook in 5.18; before, the field was public. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 18, 0)
#define get_kretprobe_retaddr(ri) ((unsigned long)(ri)->ret_addr)
#endif

static int depth = 5;
module_param(depth, int, 0444);
MODULE_PARM_DESC(depth, "argument of the outermost call (1..16)");

#define MAX_DEPTH 16

struct level {
	int n;
};

static unsigned long inner_ret;	/* return address of inner levels */
static bool inner_same = true;

/* Not a tail call: the multiplication happens after the inner call. */
static noinline unsigned long factorial(int n)
{
	unsigned long r;

	if (n <= 1)
		return 1;
	r = factorial(n - 1);
	barrier();	/* keep gcc from turning the recursion into a loop */
	return n * r;
}

static int entry_handler(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct level *lv = (struct level *)ri->data;

	lv->n = (int)regs_get_kernel_argument(regs, 0);
	return 0;
}
NOKPROBE_SYMBOL(entry_handler);

static int ret_handler(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct level *lv = (struct level *)ri->data;
	unsigned long ret_addr = get_kretprobe_retaddr(ri);

	pr_info("factorial(%d) = %lu, returns to %pS\n", lv->n,
		regs_return_value(regs), (void *)ret_addr);
	if (lv->n < depth) {
		if (!inner_ret)
			inner_ret = ret_addr;
		else if (inner_ret != ret_addr)
			inner_same = false;
	}
	return 0;
}
NOKPROBE_SYMBOL(ret_handler);

static struct kretprobe rp = {
	.kp.addr = (kprobe_opcode_t *)factorial,
	.handler = ret_handler,
	.entry_handler = entry_handler,
	.data_size = sizeof(struct level),
	.maxactive = MAX_DEPTH,	/* one instance per nested call */
};

static int __init kretprobe_recursion_init(void)
{
	unsigned long result;
	int ret;

	if (depth < 2 || depth > MAX_DEPTH)
		return -EINVAL;
	ret = register_kretprobe(&rp);
	if (ret < 0) {
		pr_err("register_kretprobe failed: %d\n", ret);
		return ret;
	}
	pr_info("return probe at %pS, maxactive %d\n", rp.kp.addr,
		rp.maxactive);
	result = factorial(depth);
	pr_info("factorial(%d) = %lu, missed %d\n", depth, result,
		rp.nmissed);
	pr_info("inner levels share one return address: %s\n",
		inner_ret && inner_same ? "yes" : "no");
	return 0;
}

static void __exit kretprobe_recursion_exit(void)
{
	unregister_kretprobe(&rp);
	pr_info("return probe removed\n");
}

module_init(kretprobe_recursion_init);
module_exit(kretprobe_recursion_exit);
MODULE_DESCRIPTION("kretprobe on a recursive function using ri->data");
MODULE_LICENSE("GPL");
