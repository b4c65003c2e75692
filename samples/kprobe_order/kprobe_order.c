// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe_order - three kprobes at one address: which pre-handler runs first?
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compiler.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/spinlock.h>

struct kord_probe {
	struct kprobe kp;
	char letter;
};

static char kord_seen[16];
static unsigned int kord_len;
static DEFINE_RAW_SPINLOCK(kord_lock);	/* raw: it must not sleep, on PREEMPT_RT either */

static int kord_sink;

/* Out of line, and with a side effect: the compiler can neither drop nor precompute a call. */
static noinline int kord_target(int x)
{
	WRITE_ONCE(kord_sink, x);
	return READ_ONCE(kord_sink) * 2;
}

static int kord_pre(struct kprobe *p, struct pt_regs *regs)
{
	struct kord_probe *probe = container_of(p, struct kord_probe, kp);
	unsigned long flags;

	raw_spin_lock_irqsave(&kord_lock, flags);
	if (kord_len + 2 < sizeof(kord_seen)) {
		kord_seen[kord_len++] = probe->letter;
		kord_seen[kord_len++] = ' ';
	}
	raw_spin_unlock_irqrestore(&kord_lock, flags);
	return 0;
}
NOKPROBE_SYMBOL(kord_pre);

static struct kord_probe kord_probes[] = {
	{ .kp = { .pre_handler = kord_pre }, .letter = 'a' },
	{ .kp = { .pre_handler = kord_pre }, .letter = 'b' },
	{ .kp = { .pre_handler = kord_pre }, .letter = 'c' },
};

static void kord_unregister(int count)
{
	while (count--)
		unregister_kprobe(&kord_probes[count].kp);
}

static int __init kprobe_order_init(void)
{
	int i, ret;

	for (i = 0; i < ARRAY_SIZE(kord_probes); i++) {
		kord_probes[i].kp.addr = (kprobe_opcode_t *)kord_target;
		ret = register_kprobe(&kord_probes[i].kp);
		if (ret < 0) {
			pr_err("register_kprobe %c failed: %d\n", kord_probes[i].letter, ret);
			kord_unregister(i);
			return ret;
		}
	}
	pr_info("probes a, b, c registered in that order at %pS\n", kord_probes[0].kp.addr);
	kord_target(1);
	kord_seen[kord_len ? kord_len - 1 : 0] = '\0';
	pr_info("one call of kord_target: pre-handlers ran in the order %s\n", kord_seen);
	return 0;
}

static void __exit kprobe_order_exit(void)
{
	kord_unregister(ARRAY_SIZE(kord_probes));
	pr_info("unloaded\n");
}

module_init(kprobe_order_init);
module_exit(kprobe_order_exit);
MODULE_DESCRIPTION("the order in which several kprobes at one address run");
MODULE_LICENSE("GPL");
