// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe_optimized - a pre-handler-only probe inside vfs_read().
 *
 * On kernels with CONFIG_OPTPROBES the kernel replaces the probe's
 * breakpoint by a jump once it is sure nothing executes in the bytes the
 * jump covers.  Writing 1 to the add_post parameter registers a second
 * probe at the same address, with a post-handler, which a jump cannot
 * serve: the kernel goes back to a breakpoint.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/errno.h>
#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

static atomic_t hits = ATOMIC_INIT(0);
static bool post_registered;

static int kpo_pre(struct kprobe *p, struct pt_regs *regs)
{
	atomic_inc(&hits);
	return 0;
}
NOKPROBE_SYMBOL(kpo_pre);

static void kpo_post(struct kprobe *p, struct pt_regs *regs, unsigned long flags)
{
}
NOKPROBE_SYMBOL(kpo_post);

static struct kprobe kpo_probe = { .symbol_name = "vfs_read", .pre_handler = kpo_pre };
static struct kprobe kpo_post_probe = {
	.symbol_name = "vfs_read",
	.pre_handler = kpo_pre,
	.post_handler = kpo_post,
};

static int kpo_add_post(const char *val, const struct kernel_param *param)
{
	bool add;
	int ret;

	ret = kstrtobool(val, &add);
	if (ret)
		return ret;
	if (!add && post_registered) {
		unregister_kprobe(&kpo_post_probe);
		post_registered = false;
		pr_info("the probe with a post-handler is gone again\n");
		return 0;
	}
	if (!add || post_registered)
		return 0;
	kpo_post_probe.offset = kpo_probe.offset;
	ret = register_kprobe(&kpo_post_probe);
	if (ret < 0) {
		pr_err("register_kprobe with a post-handler failed: %d\n", ret);
		return ret;
	}
	post_registered = true;
	pr_info("a second probe, with a post-handler, at %pS\n", kpo_post_probe.addr);
	return 0;
}

static const struct kernel_param_ops kpo_add_post_ops = { .set = kpo_add_post };
module_param_cb(add_post, &kpo_add_post_ops, NULL, 0200);
MODULE_PARM_DESC(add_post, "1: add a probe with a post-handler at the same address; 0: remove it");

static int __init kprobe_optimized_init(void)
{
	unsigned int offset;
	int ret = -EINVAL;

	/* The body of vfs_read: try each offset past 16 until one is an instruction boundary. */
	for (offset = 17; offset < 96; offset++) {
		kpo_probe.addr = NULL;
		kpo_probe.flags = 0;
		kpo_probe.offset = offset;
		ret = register_kprobe(&kpo_probe);
		if (ret != -EILSEQ && ret != -EINVAL)
			break;
	}
	if (ret < 0) {
		pr_err("no offset of vfs_read took a probe: %d\n", ret);
		return ret;
	}
	pr_info("planted at %pS, the first offset past 16 that takes a probe\n", kpo_probe.addr);
	return 0;
}

static void __exit kprobe_optimized_exit(void)
{
	if (post_registered)
		unregister_kprobe(&kpo_post_probe);
	unregister_kprobe(&kpo_probe);
	pr_info("%d hits\n", atomic_read(&hits));
}

module_init(kprobe_optimized_init);
module_exit(kprobe_optimized_exit);
MODULE_DESCRIPTION("a kprobe the kernel optimizes into a jump, and what undoes it");
MODULE_LICENSE("GPL");
