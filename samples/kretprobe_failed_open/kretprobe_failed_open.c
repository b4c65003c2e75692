// SPDX-License-Identifier: GPL-2.0
/*
 * kretprobe_failed_open - report failed opens with how long they took.
 *
 * The entry handler stamps the time into the instance's private data
 * (ri->data, data_size bytes) and declines kernel threads by returning
 * non-zero.  The return handler reads the stamp back and logs every open
 * that returned an error.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/err.h>
#include <linux/kallsyms.h>
#include <linux/kprobes.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/sched.h>

static char func[KSYM_NAME_LEN];
module_param_string(func, func, sizeof(func), 0444);
MODULE_PARM_DESC(func, "the open path to probe (default: see candidates)");

/* Where the open path fails, newest kernels first. */
static const char *const candidates[] = { "do_file_open", "do_sys_openat2" };
static const char *probed;

#define LOG_LIMIT 8

/* Per-call private data, carried from entry to return in ri->data. */
struct open_data {
	ktime_t entry_stamp;
};

static atomic_t failures = ATOMIC_INIT(0);

static int entry_handler(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct open_data *data = (struct open_data *)ri->data;

	if (!current->mm)
		return 1;	/* a kernel thread: no return handler */
	data->entry_stamp = ktime_get();
	return 0;
}
NOKPROBE_SYMBOL(entry_handler);

static int return_handler(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct open_data *data = (struct open_data *)ri->data;
	unsigned long retval = regs_return_value(regs);
	s64 delta;

	if (!IS_ERR_VALUE(retval))
		return 0;
	delta = ktime_to_ns(ktime_sub(ktime_get(), data->entry_stamp));
	if (atomic_inc_return(&failures) <= LOG_LIMIT)
		pr_info("%s (%s): returned %ld after %lld ns\n", probed,
			current->comm, (long)retval, delta);
	return 0;
}
NOKPROBE_SYMBOL(return_handler);

static struct kretprobe open_probe = {
	.handler = return_handler,
	.entry_handler = entry_handler,
	.data_size = sizeof(struct open_data),
	.maxactive = 16,
};

static int plant(const char *name)
{
	open_probe.kp.addr = NULL;
	open_probe.kp.symbol_name = name;
	probed = name;
	return register_kretprobe(&open_probe);
}

static int __init kretprobe_failed_open_init(void)
{
	unsigned int i;
	int ret = -ENOENT;

	if (func[0])
		ret = plant(func);
	for (i = 0; !func[0] && ret == -ENOENT && i < ARRAY_SIZE(candidates);
	     i++)
		ret = plant(candidates[i]);
	if (ret < 0) {
		pr_err("register_kretprobe on %s failed: %d\n", probed, ret);
		return ret;
	}
	pr_info("watching failed opens in %s\n", probed);
	return 0;
}

static void __exit kretprobe_failed_open_exit(void)
{
	unregister_kretprobe(&open_probe);
	pr_info("%s: %d failed opens, missed %d\n", probed,
		atomic_read(&failures), open_probe.nmissed);
}

module_init(kretprobe_failed_open_init);
module_exit(kretprobe_failed_open_exit);
MODULE_DESCRIPTION("kretprobe logging failed opens and their duration");
MODULE_LICENSE("GPL");
