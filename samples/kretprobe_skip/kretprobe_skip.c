// SPDX-License-Identifier: GPL-2.0
/*
 * kretprobe_skip - an entry handler that declines some calls.
 *
 * The entry handler returns non-zero for every second call it sees.  For
 * those calls kprobes plants no return hook and gives the instance back,
 * so the return handler runs only for the calls the entry handler kept:
 * returns == entries - skipped.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/kallsyms.h>
#include <linux/kprobes.h>
#include <linux/module.h>

static char func[KSYM_NAME_LEN] = "do_sys_openat2";
module_param_string(func, func, sizeof(func), 0444);
MODULE_PARM_DESC(func, "a function that returns promptly");

static atomic_t entries = ATOMIC_INIT(0);
static atomic_t skipped = ATOMIC_INIT(0);
static atomic_t returns = ATOMIC_INIT(0);

static int entry_handler(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	/* Keep the 1st, 3rd, 5th... call; decline the others. */
	if (atomic_inc_return(&entries) % 2 == 0) {
		atomic_inc(&skipped);
		return 1;
	}
	return 0;
}
NOKPROBE_SYMBOL(entry_handler);

static int ret_handler(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	atomic_inc(&returns);
	return 0;
}
NOKPROBE_SYMBOL(ret_handler);

static struct kretprobe rp = {
	.handler = ret_handler,
	.entry_handler = entry_handler,
	.maxactive = 32,
};

static int __init kretprobe_skip_init(void)
{
	int ret;

	rp.kp.symbol_name = func;
	ret = register_kretprobe(&rp);
	if (ret < 0) {
		pr_err("register_kretprobe on %s failed: %d\n", func, ret);
		return ret;
	}
	pr_info("return probe on %s skips every second call\n", func);
	return 0;
}

static void __exit kretprobe_skip_exit(void)
{
	int e, s, r;

	unregister_kretprobe(&rp);
	e = atomic_read(&entries);
	s = atomic_read(&skipped);
	r = atomic_read(&returns);
	pr_info("%s: entries %d, skipped %d, returns %d, missed %d\n", func,
		e, s, r, rp.nmissed);
	pr_info("returns == entries - skipped: %s\n",
		r == e - s ? "yes" : "no");
}

module_init(kretprobe_skip_init);
module_exit(kretprobe_skip_exit);
MODULE_DESCRIPTION("kretprobe entry handler that skips every second call");
MODULE_LICENSE("GPL");
