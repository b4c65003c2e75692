// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe_errors - what register_kprobe() and register_kretprobe() refuse.
 *
 * Each case asks for a probe the kernel must refuse and prints the error
 * number it got; a registration that succeeds is undone at once.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/errno.h>
#include <linux/kprobes.h>
#include <linux/module.h>

static int kpe_pre(struct kprobe *p, struct pt_regs *regs)
{
	return 0;
}
NOKPROBE_SYMBOL(kpe_pre);

/* Probing this function is refused: the module puts it in the blacklist. */
static noinline int kpe_protected(int x)
{
	return x + 1;
}
NOKPROBE_SYMBOL(kpe_protected);

static int kpe_ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	return 0;
}
NOKPROBE_SYMBOL(kpe_ret);

static const char *kpe_name(int ret)
{
	switch (ret) {
	case 0:
		return "(accepted)";
	case -EINVAL:
		return "-EINVAL";
	case -ENOENT:
		return "-ENOENT";
	case -EILSEQ:
		return "-EILSEQ";
	case -E2BIG:
		return "-E2BIG";
	default:
		return "(another error)";
	}
}

static void kpe_report(const char *what, int ret)
{
	pr_info("%s: %d %s\n", what, ret, kpe_name(ret));
}

static void kpe_try(const char *what, struct kprobe *kp)
{
	int ret = register_kprobe(kp);

	kpe_report(what, ret);
	if (!ret)
		unregister_kprobe(kp);
}

static void kpe_try_kretprobe(const char *what, struct kretprobe *rp)
{
	int ret = register_kretprobe(rp);

	kpe_report(what, ret);
	if (!ret)
		unregister_kretprobe(rp);
}

static struct kprobe kpe_good = { .symbol_name = "kernel_clone", .pre_handler = kpe_pre };
static struct kprobe kpe_both = { .symbol_name = "kernel_clone", .pre_handler = kpe_pre };
static struct kprobe kpe_black = { .symbol_name = "atomic_notifier_call_chain", .pre_handler = kpe_pre };
static struct kprobe kpe_own = { .pre_handler = kpe_pre };
static struct kprobe kpe_data = { .symbol_name = "jiffies", .pre_handler = kpe_pre };
static struct kprobe kpe_mid = { .symbol_name = "kernel_clone", .offset = 1, .pre_handler = kpe_pre };
static struct kprobe kpe_unknown = { .symbol_name = "kd_no_such_function", .pre_handler = kpe_pre };
static struct kprobe kpe_again = { .symbol_name = "kernel_clone", .pre_handler = kpe_pre };

static struct kretprobe kpe_offset = {
	.kp = { .symbol_name = "kernel_clone", .offset = 0x10 },
	.handler = kpe_ret,
};

static struct kretprobe kpe_big = {
	.kp = { .symbol_name = "kernel_clone" },
	.handler = kpe_ret,
	.data_size = 4097,	/* KRETPROBE_MAX_DATA_SIZE is 4096 */
	.maxactive = 1,
};

static int __init kprobe_errors_init(void)
{
	int ret;

	kpe_try("kernel_clone", &kpe_good);
	kpe_both.addr = (kprobe_opcode_t *)kpe_protected;
	kpe_try("addr and symbol_name both set", &kpe_both);
	kpe_try("atomic_notifier_call_chain, marked NOKPROBE_SYMBOL in the kernel", &kpe_black);
	kpe_own.addr = (kprobe_opcode_t *)kpe_protected;
	kpe_try("kpe_protected, marked NOKPROBE_SYMBOL in this module", &kpe_own);
	kpe_try("jiffies, a variable", &kpe_data);
	kpe_try("kernel_clone+1, inside an instruction", &kpe_mid);
	kpe_try("kd_no_such_function", &kpe_unknown);
	kpe_try_kretprobe("kretprobe at kernel_clone+0x10, not the entry", &kpe_offset);
	kpe_try_kretprobe("kretprobe with data_size 4097", &kpe_big);

	/* register_kprobe() fills in kp->addr; unregistering leaves it there. */
	ret = register_kprobe(&kpe_again);
	if (ret) {
		kpe_report("kernel_clone, the first time", ret);
		return ret;
	}
	unregister_kprobe(&kpe_again);
	kpe_try("registered again with addr left from the first time", &kpe_again);
	return 0;
}

static void __exit kprobe_errors_exit(void)
{
	pr_info("unloaded\n");
}

module_init(kprobe_errors_init);
module_exit(kprobe_errors_exit);
MODULE_DESCRIPTION("what register_kprobe() and register_kretprobe() refuse");
MODULE_LICENSE("GPL");
