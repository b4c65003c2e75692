// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe_switch - two probes, one disabled, and the global switch.
 *
 * Writing a phase number to the phase parameter calls both probed
 * functions once and reports which probes fired.  Between phases the
 * trigger turns /sys/kernel/debug/kprobes/enabled off and on; while it is
 * off, phase 2 also calls enable_kprobe() on the disabled probe.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/compiler.h>
#include <linux/kprobes.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

static atomic_t on_hits = ATOMIC_INIT(0);
static atomic_t off_hits = ATOMIC_INIT(0);

static int ksw_sink;

/* Out of line, and with side effects: the compiler can neither drop nor precompute a call. */
static noinline int ksw_target(int x)
{
	WRITE_ONCE(ksw_sink, x);
	return READ_ONCE(ksw_sink) - 1;
}

static noinline int ksw_other(int x)
{
	WRITE_ONCE(ksw_sink, x);
	return READ_ONCE(ksw_sink) + 1;
}

static int ksw_on_pre(struct kprobe *p, struct pt_regs *regs)
{
	atomic_inc(&on_hits);
	return 0;
}
NOKPROBE_SYMBOL(ksw_on_pre);

static int ksw_off_pre(struct kprobe *p, struct pt_regs *regs)
{
	atomic_inc(&off_hits);
	return 0;
}
NOKPROBE_SYMBOL(ksw_off_pre);

static struct kprobe ksw_on = { .pre_handler = ksw_on_pre };
/* On a function of its own: a probe alone at its address, not a member of an aggregate. */
static struct kprobe ksw_off = { .pre_handler = ksw_off_pre, .flags = KPROBE_FLAG_DISABLED };

static int ksw_phase(const char *val, const struct kernel_param *param)
{
	static const char * const state[] = { "", "switch on", "switch off", "switch on again" };
	unsigned int phase;
	int ret;

	ret = kstrtouint(val, 10, &phase);
	if (ret || phase < 1 || phase > 3)
		return -EINVAL;
	if (phase == 2)
		pr_info("phase 2, switch off: enable_kprobe() on the disabled probe returned %d\n",
			enable_kprobe(&ksw_off));
	ksw_target(1);
	ksw_other(1);
	pr_info("phase %u, %s: probe on hits %d, probe disabled by disable_kprobe() hits %d\n",
		phase, state[phase], atomic_read(&on_hits), atomic_read(&off_hits));
	return 0;
}

static const struct kernel_param_ops ksw_phase_ops = { .set = ksw_phase };
module_param_cb(phase, &ksw_phase_ops, NULL, 0200);
MODULE_PARM_DESC(phase, "write 1, 2 or 3: call the probed function and report");

static int __init kprobe_switch_init(void)
{
	int ret;

	ksw_on.addr = (kprobe_opcode_t *)ksw_target;
	ret = register_kprobe(&ksw_on);
	if (ret < 0) {
		pr_err("register_kprobe failed: %d\n", ret);
		return ret;
	}
	ksw_off.addr = (kprobe_opcode_t *)ksw_other;
	ret = register_kprobe(&ksw_off);
	if (ret < 0) {
		pr_err("register_kprobe (disabled) failed: %d\n", ret);
		unregister_kprobe(&ksw_on);
		return ret;
	}
	pr_info("a probe on ksw_target, and one on ksw_other registered disabled\n");
	return 0;
}

static void __exit kprobe_switch_exit(void)
{
	unregister_kprobe(&ksw_off);
	unregister_kprobe(&ksw_on);
	pr_info("unloaded\n");
}

module_init(kprobe_switch_init);
module_exit(kprobe_switch_exit);
MODULE_DESCRIPTION("the global kprobes switch and a probe disabled on its own");
MODULE_LICENSE("GPL");
