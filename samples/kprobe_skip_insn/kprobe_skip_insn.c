// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe_skip_insn - a pre-handler that returns 1 has taken over.
 *
 * The kernel then neither executes the probed instruction nor calls the
 * post-handler; execution resumes wherever the handler left the
 * instruction pointer.  This one sends it to another function with the
 * same arguments, as a tail call: at the entry of ksi_target() the
 * caller's return address is still where a call left it (on the stack on
 * x86, in the link register on arm64), so ksi_instead() returns 100 to
 * ksi_target()'s caller.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compiler.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/ptrace.h>

static bool ksi_take_over;
static int ksi_posts;

static int ksi_sink;

/* Out of line, and with side effects: the compiler can neither drop nor precompute a call. */
static noinline int ksi_target(int x)
{
	WRITE_ONCE(ksi_sink, x);
	return READ_ONCE(ksi_sink) + 1;
}

static noinline int ksi_instead(int x)
{
	WRITE_ONCE(ksi_sink, 100);
	return READ_ONCE(ksi_sink);
}

static int ksi_pre(struct kprobe *p, struct pt_regs *regs)
{
	if (!ksi_take_over)
		return 0;
	instruction_pointer_set(regs, (unsigned long)ksi_instead);
	return 1;
}
NOKPROBE_SYMBOL(ksi_pre);

static void ksi_post(struct kprobe *p, struct pt_regs *regs, unsigned long flags)
{
	ksi_posts++;
}
NOKPROBE_SYMBOL(ksi_post);

static struct kprobe ksi_probe = { .pre_handler = ksi_pre, .post_handler = ksi_post };

static int __init kprobe_skip_insn_init(void)
{
	int ret;

	ksi_probe.addr = (kprobe_opcode_t *)ksi_target;
	ret = register_kprobe(&ksi_probe);
	if (ret < 0) {
		pr_err("register_kprobe failed: %d\n", ret);
		return ret;
	}
	ret = ksi_target(1);
	pr_info("pre-handler returns 0: ksi_target(1) returned %d, the post-handler ran %d time\n", ret, ksi_posts);
	ksi_take_over = true;
	ret = ksi_target(1);
	pr_info("pre-handler returns 1: ksi_target(1) returned %d, the post-handler ran %d time\n", ret, ksi_posts);
	return 0;
}

static void __exit kprobe_skip_insn_exit(void)
{
	unregister_kprobe(&ksi_probe);
	pr_info("unloaded\n");
}

module_init(kprobe_skip_insn_init);
module_exit(kprobe_skip_insn_exit);
MODULE_DESCRIPTION("a pre-handler that returns non-zero skips the instruction and the post-handler");
MODULE_LICENSE("GPL");
