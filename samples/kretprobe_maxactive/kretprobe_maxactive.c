// SPDX-License-Identifier: GPL-2.0
/*
 * kretprobe_maxactive - a return probe that can follow one call at a time.
 *
 * maxactive = 1 makes register_kretprobe() preallocate a single
 * kretprobe_instance.  While one call of the probed function is in
 * flight (here: a task sleeping in hrtimer_nanosleep), every other entry
 * finds no free instance and only increments rp.nmissed.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/kallsyms.h>
#include <linux/kprobes.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/sched.h>

static char func[KSYM_NAME_LEN] = "hrtimer_nanosleep";
module_param_string(func, func, sizeof(func), 0444);
MODULE_PARM_DESC(func, "the function to profile, one call at a time");

#define LOG_LIMIT 4

struct call_data {
	ktime_t entry;
};

static atomic_t entries = ATOMIC_INIT(0);
static atomic_t returns = ATOMIC_INIT(0);

/* Only runs for an entry that got the instance; misses never get here. */
static int entry_handler(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct call_data *data = (struct call_data *)ri->data;

	data->entry = ktime_get();
	atomic_inc(&entries);
	return 0;
}
NOKPROBE_SYMBOL(entry_handler);

static int ret_handler(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct call_data *data = (struct call_data *)ri->data;
	s64 ns = ktime_to_ns(ktime_sub(ktime_get(), data->entry));

	if (atomic_inc_return(&returns) <= LOG_LIMIT)
		pr_info("%s: pid %d returned after %lld ns\n", func,
			task_pid_nr(current), ns);
	return 0;
}
NOKPROBE_SYMBOL(ret_handler);

static struct kretprobe rp = {
	.handler = ret_handler,
	.entry_handler = entry_handler,
	.data_size = sizeof(struct call_data),
	.maxactive = 1,		/* profile one invocation at a time */
};

static int __init kretprobe_maxactive_init(void)
{
	int ret;

	rp.kp.symbol_name = func;
	ret = register_kretprobe(&rp);
	if (ret < 0) {
		pr_err("register_kretprobe on %s failed: %d\n", func, ret);
		return ret;
	}
	pr_info("return probe on %s, maxactive %d\n", func, rp.maxactive);
	return 0;
}

static void __exit kretprobe_maxactive_exit(void)
{
	unregister_kretprobe(&rp);
	pr_info("%s: entries %d returns %d missed %d (maxactive %d)\n", func,
		atomic_read(&entries), atomic_read(&returns), rp.nmissed,
		rp.maxactive);
}

module_init(kretprobe_maxactive_init);
module_exit(kretprobe_maxactive_exit);
MODULE_DESCRIPTION("kretprobe with maxactive = 1 counting missed calls");
MODULE_LICENSE("GPL");
