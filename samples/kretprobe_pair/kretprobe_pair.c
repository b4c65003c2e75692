// SPDX-License-Identifier: GPL-2.0
/*
 * kretprobe_pair - two kretprobes on kernel_clone, each with its own data.
 *
 * Each entry handler writes its probe's own tag and the call's pid into
 * the instance's data; each return handler checks that it finds them.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/sched.h>

struct krp_data {
	unsigned long tag;
	pid_t pid;
};

struct krp_probe {
	struct kretprobe rp;
	const char *name;
	unsigned long tag;
	atomic_t entries, returns, wrong;
};

static struct krp_probe krp_probes[] = {
	{ .name = "probe one", .tag = 0x1111 },
	{ .name = "probe two", .tag = 0x2222 },
};

static int krp_entry(struct krp_probe *probe, struct kretprobe_instance *ri)
{
	struct krp_data *data = (struct krp_data *)ri->data;

	data->tag = probe->tag;
	data->pid = current->pid;
	atomic_inc(&probe->entries);
	return 0;
}
NOKPROBE_SYMBOL(krp_entry);

static int krp_return(struct krp_probe *probe, struct kretprobe_instance *ri)
{
	struct krp_data *data = (struct krp_data *)ri->data;

	atomic_inc(&probe->returns);
	if (data->tag != probe->tag || data->pid != current->pid)
		atomic_inc(&probe->wrong);
	return 0;
}
NOKPROBE_SYMBOL(krp_return);

/* One pair of handlers per probe: each knows its probe without asking the instance. */
static int krp_entry_one(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	return krp_entry(&krp_probes[0], ri);
}
NOKPROBE_SYMBOL(krp_entry_one);

static int krp_return_one(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	return krp_return(&krp_probes[0], ri);
}
NOKPROBE_SYMBOL(krp_return_one);

static int krp_entry_two(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	return krp_entry(&krp_probes[1], ri);
}
NOKPROBE_SYMBOL(krp_entry_two);

static int krp_return_two(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	return krp_return(&krp_probes[1], ri);
}
NOKPROBE_SYMBOL(krp_return_two);

static int __init kretprobe_pair_init(void)
{
	int i, ret;

	for (i = 0; i < ARRAY_SIZE(krp_probes); i++) {
		struct kretprobe *rp = &krp_probes[i].rp;

		rp->kp.symbol_name = "kernel_clone";
		rp->entry_handler = i ? krp_entry_two : krp_entry_one;
		rp->handler = i ? krp_return_two : krp_return_one;
		rp->data_size = sizeof(struct krp_data);
		rp->maxactive = 20;
		ret = register_kretprobe(rp);
		if (ret < 0) {
			pr_err("register_kretprobe %s failed: %d\n", krp_probes[i].name, ret);
			while (i--)
				unregister_kretprobe(&krp_probes[i].rp);
			return ret;
		}
	}
	pr_info("two return probes on kernel_clone\n");
	return 0;
}

static void __exit kretprobe_pair_exit(void)
{
	int i;

	for (i = ARRAY_SIZE(krp_probes) - 1; i >= 0; i--)
		unregister_kretprobe(&krp_probes[i].rp);
	for (i = 0; i < ARRAY_SIZE(krp_probes); i++) {
		struct krp_probe *probe = &krp_probes[i];
		int wrong = atomic_read(&probe->wrong);

		pr_info("%s: %d entries, %d returns, %s\n", probe->name, atomic_read(&probe->entries),
			atomic_read(&probe->returns),
			wrong ? "some returns saw other data" : "every return saw its own data");
	}
}

module_init(kretprobe_pair_init);
module_exit(kretprobe_pair_exit);
MODULE_DESCRIPTION("two kretprobes on one function keep their own instances and data");
MODULE_LICENSE("GPL");
