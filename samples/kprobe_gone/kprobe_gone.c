// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe_gone - a probe on a module's init function becomes "gone".
 *
 * When a module has finished loading, the kernel frees its init code and
 * marks every probe in it gone: it never fires again, and enable_kprobe()
 * refuses it.  Unregistering it is still needed, and safe.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/compiler.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

static atomic_t kpg_hits = ATOMIC_INIT(0);

static int kpg_pre(struct kprobe *p, struct pt_regs *regs)
{
	atomic_inc(&kpg_hits);
	return 0;
}
NOKPROBE_SYMBOL(kpg_pre);

static struct kprobe kpg_probe = { .pre_handler = kpg_pre };

static int kpg_sink;

/* Out of line, and with a side effect: the compiler can neither drop nor precompute a call. */
static noinline int __init kpg_in_init(int x)
{
	WRITE_ONCE(kpg_sink, x);
	return READ_ONCE(kpg_sink) * 3;
}

static int kpg_enable_again(const char *val, const struct kernel_param *param)
{
	pr_info("enable_kprobe() on it now that init memory is freed: %d\n", enable_kprobe(&kpg_probe));
	return 0;
}

static const struct kernel_param_ops kpg_enable_ops = { .set = kpg_enable_again };
module_param_cb(enable_again, &kpg_enable_ops, NULL, 0200);
MODULE_PARM_DESC(enable_again, "write 1: call enable_kprobe() on the probe");

static int __init kprobe_gone_init(void)
{
	int ret;

	kpg_probe.addr = (kprobe_opcode_t *)kpg_in_init;
	ret = register_kprobe(&kpg_probe);
	if (ret < 0) {
		pr_err("register_kprobe failed: %d\n", ret);
		return ret;
	}
	kpg_in_init(1);
	pr_info("probe on kpg_in_init, an init function: %d hit while the module was loading\n",
		atomic_read(&kpg_hits));
	return 0;
}

static void __exit kprobe_gone_exit(void)
{
	unregister_kprobe(&kpg_probe);
	pr_info("unloaded\n");
}

module_init(kprobe_gone_init);
module_exit(kprobe_gone_exit);
MODULE_DESCRIPTION("a probe on init code becomes gone when the init code is freed");
MODULE_LICENSE("GPL");
