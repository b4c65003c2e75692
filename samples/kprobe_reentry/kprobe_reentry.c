// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe_reentry - the outer probe's pre-handler calls a function that has
 * a probe of its own: the kernel does not run a handler from inside a
 * handler, it counts the inner probe as missed instead.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/compiler.h>
#include <linux/kprobes.h>
#include <linux/module.h>

static atomic_t outer_hits = ATOMIC_INIT(0);
static atomic_t inner_hits = ATOMIC_INIT(0);

static int kre_sink;

/* Out of line, and with side effects: the compiler can neither drop nor precompute a call. */
static noinline int kre_inner(int x)
{
	WRITE_ONCE(kre_sink, x);
	return READ_ONCE(kre_sink) + 1;
}

static noinline int kre_outer(int x)
{
	WRITE_ONCE(kre_sink, x);
	return READ_ONCE(kre_sink) + 2;
}

static int kre_outer_pre(struct kprobe *p, struct pt_regs *regs)
{
	atomic_inc(&outer_hits);
	kre_inner(0);		/* hits the inner probe while this handler runs */
	return 0;
}
NOKPROBE_SYMBOL(kre_outer_pre);

static int kre_inner_pre(struct kprobe *p, struct pt_regs *regs)
{
	atomic_inc(&inner_hits);
	return 0;
}
NOKPROBE_SYMBOL(kre_inner_pre);

static struct kprobe kre_outer_probe = { .pre_handler = kre_outer_pre };
static struct kprobe kre_inner_probe = { .pre_handler = kre_inner_pre };

static int __init kprobe_reentry_init(void)
{
	int i, ret;

	kre_inner_probe.addr = (kprobe_opcode_t *)kre_inner;
	ret = register_kprobe(&kre_inner_probe);
	if (ret < 0) {
		pr_err("register_kprobe inner failed: %d\n", ret);
		return ret;
	}
	kre_outer_probe.addr = (kprobe_opcode_t *)kre_outer;
	ret = register_kprobe(&kre_outer_probe);
	if (ret < 0) {
		pr_err("register_kprobe outer failed: %d\n", ret);
		unregister_kprobe(&kre_inner_probe);
		return ret;
	}
	for (i = 0; i < 3; i++)
		kre_outer(i);
	for (i = 0; i < 2; i++)
		kre_inner(i);
	pr_info("outer probe: %d hits; inner probe: %d hits, %lu missed\n",
		atomic_read(&outer_hits), atomic_read(&inner_hits), kre_inner_probe.nmissed);
	return 0;
}

static void __exit kprobe_reentry_exit(void)
{
	unregister_kprobe(&kre_outer_probe);
	unregister_kprobe(&kre_inner_probe);
	pr_info("unloaded\n");
}

module_init(kprobe_reentry_init);
module_exit(kprobe_reentry_exit);
MODULE_DESCRIPTION("a probe hit from inside a handler is counted as missed");
MODULE_LICENSE("GPL");
