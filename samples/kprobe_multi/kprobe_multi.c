// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe_multi - three kprobes on one address, registered in one call.
 *
 * Probe a is always armed.  Probe b is registered already disabled
 * (KPROBE_FLAG_DISABLED) and never enabled.  Probe c is switched off with
 * disable_kprobe() for a while and then on again with enable_kprobe().
 * The module calls the probed function a known number of times in each
 * phase, so the hit counts show exactly which probe fired when.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/compiler.h>
#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/module.h>

struct counted_probe {
	struct kprobe kp;
	atomic_t hits;
};

static int sink;

/* The probed function: kept out of line, called with varying arguments. */
static noinline void multi_target(int n)
{
	WRITE_ONCE(sink, READ_ONCE(sink) + n);
}

static int multi_pre(struct kprobe *p, struct pt_regs *regs)
{
	atomic_inc(&container_of(p, struct counted_probe, kp)->hits);
	return 0;
}
NOKPROBE_SYMBOL(multi_pre);

static struct counted_probe probe_a = {
	.kp = { .addr = (kprobe_opcode_t *)multi_target,
		.pre_handler = multi_pre },
};
static struct counted_probe probe_b = {
	.kp = { .addr = (kprobe_opcode_t *)multi_target,
		.pre_handler = multi_pre,
		.flags = KPROBE_FLAG_DISABLED },
};
static struct counted_probe probe_c = {
	.kp = { .addr = (kprobe_opcode_t *)multi_target,
		.pre_handler = multi_pre },
};

static struct kprobe *probes[] = { &probe_a.kp, &probe_b.kp, &probe_c.kp };

/* A batch whose second probe cannot be registered: none of it is. */
static struct counted_probe probe_d = {
	.kp = { .addr = (kprobe_opcode_t *)multi_target,
		.pre_handler = multi_pre },
};
static struct kprobe probe_unknown = { .symbol_name = "kd_no_such_function", .pre_handler = multi_pre };
static struct kprobe *bad_batch[] = { &probe_d.kp, &probe_unknown };

static void call_target(int times)
{
	int i;

	for (i = 0; i < times; i++)
		multi_target(i);
}

static void report(const char *when)
{
	pr_info("%s: a=%d b=%d c=%d\n", when, atomic_read(&probe_a.hits),
		atomic_read(&probe_b.hits), atomic_read(&probe_c.hits));
}

static int __init kprobe_multi_init(void)
{
	int bad, ret;

	bad = register_kprobes(bad_batch, ARRAY_SIZE(bad_batch));
	if (!bad)
		unregister_kprobes(bad_batch, ARRAY_SIZE(bad_batch));
	ret = register_kprobes(probes, ARRAY_SIZE(probes));
	if (ret < 0) {
		pr_err("register_kprobes failed: %d\n", ret);
		return ret;
	}
	pr_info("3 kprobes at %pS, b registered disabled\n", probe_a.kp.addr);

	call_target(3);
	report("phase 1, 3 calls");
	pr_info("a batch of d and an unknown symbol: register_kprobes() returned %d; d fired %d times\n",
		bad, atomic_read(&probe_d.hits));

	ret = disable_kprobe(&probe_c.kp);
	if (ret < 0)
		goto fail;
	call_target(2);
	report("phase 2, c disabled, 2 calls");

	ret = enable_kprobe(&probe_c.kp);
	if (ret < 0)
		goto fail;
	call_target(4);
	report("phase 3, c enabled again, 4 calls");

	/* Leave c disabled while loaded, to show it in kprobes/list. */
	ret = disable_kprobe(&probe_c.kp);
	if (ret < 0)
		goto fail;
	return 0;

fail:
	pr_err("disable/enable_kprobe failed: %d\n", ret);
	unregister_kprobes(probes, ARRAY_SIZE(probes));
	return ret;
}

static void __exit kprobe_multi_exit(void)
{
	call_target(1);
	unregister_kprobes(probes, ARRAY_SIZE(probes));
	report("unloaded after 1 more call");
}

module_init(kprobe_multi_init);
module_exit(kprobe_multi_exit);
MODULE_DESCRIPTION("several kprobes on one address, disabled and enabled");
MODULE_LICENSE("GPL");
