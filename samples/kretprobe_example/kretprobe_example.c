// SPDX-License-Identifier: GPL-2.0
/*
 * kretprobe_example - time each call of a kernel function.
 *
 * The entry handler stamps the entry time into the per-instance data of the
 * kretprobe_instance (rp.data_size bytes, reached through ri->data); the
 * return handler reads it back from the same instance, so entry and return
 * are matched even when calls nest, sleep or migrate between CPUs.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/kallsyms.h>
#include <linux/kprobes.h>
#include <linux/ktime.h>
#include <linux/module.h>

static char func[KSYM_NAME_LEN] = "kernel_clone";
module_param_string(func, func, sizeof(func), 0444);
MODULE_PARM_DESC(func, "the kernel function to time");

static unsigned int max_reports = 5;
module_param(max_reports, uint, 0444);
MODULE_PARM_DESC(max_reports, "how many returns to log (the rest are counted)");

static atomic_t returns = ATOMIC_INIT(0);

/* Per-instance data: lives inside each kretprobe_instance. */
struct call_data {
	ktime_t entry_stamp;
};

static int entry_handler(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct call_data *data = (struct call_data *)ri->data;

	data->entry_stamp = ktime_get();
	return 0;
}
NOKPROBE_SYMBOL(entry_handler);

static int return_handler(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct call_data *data = (struct call_data *)ri->data;
	unsigned long retval = regs_return_value(regs);
	s64 delta = ktime_to_ns(ktime_sub(ktime_get(), data->entry_stamp));

	if (atomic_inc_return(&returns) <= max_reports)
		pr_info("%s returned %ld after %lld ns\n", func, (long)retval,
			delta);
	return 0;
}
NOKPROBE_SYMBOL(return_handler);

static struct kretprobe my_kretprobe = {
	.handler = return_handler,
	.entry_handler = entry_handler,
	.data_size = sizeof(struct call_data),
	/* Up to 20 calls may be in flight at once before returns are missed. */
	.maxactive = 20,
};

static int __init kretprobe_example_init(void)
{
	int ret;

	my_kretprobe.kp.symbol_name = func;
	ret = register_kretprobe(&my_kretprobe);
	if (ret < 0) {
		pr_err("register_kretprobe on %s failed: %d\n", func, ret);
		return ret;
	}
	pr_info("return probe planted on %s at %pS\n", func,
		my_kretprobe.kp.addr);
	return 0;
}

static void __exit kretprobe_example_exit(void)
{
	unregister_kretprobe(&my_kretprobe);
	pr_info("return probe on %s removed: %d returns seen\n", func,
		atomic_read(&returns));
	/* A non-zero count means maxactive was too small for the load. */
	pr_info("Missed probing %d instances of %s\n", my_kretprobe.nmissed,
		func);
}

module_init(kretprobe_example_init);
module_exit(kretprobe_example_exit);
MODULE_DESCRIPTION("kretprobe timing a function with per-instance data");
MODULE_LICENSE("GPL");
