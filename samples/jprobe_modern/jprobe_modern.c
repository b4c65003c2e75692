// SPDX-License-Identifier: GPL-2.0
/*
 * jprobe_modern - what a jprobe did, done with a plain kprobe.
 *
 * A pre-handler on kernel_clone() reads the first argument from the saved
 * registers with regs_get_kernel_argument().  kernel_clone() takes a
 * struct kernel_clone_args *, so the handler can read the clone flags and
 * the exit signal of every fork, vfork and clone.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/ptrace.h>
#include <linux/sched.h>
#include <linux/sched/task.h>

#define LOG_LIMIT 3

static atomic_t calls = ATOMIC_INIT(0);
static atomic_t logged = ATOMIC_INIT(0);

static int clone_pre(struct kprobe *p, struct pt_regs *regs)
{
	struct kernel_clone_args *args;

	args = (struct kernel_clone_args *)regs_get_kernel_argument(regs, 0);
	atomic_inc(&calls);
	/* Log a few user forks; kernel threads have exit_signal 0. */
	if (args->exit_signal != SIGCHLD)
		return 0;
	if (atomic_inc_return(&logged) <= LOG_LIMIT)
		pr_info("kernel_clone by %s: flags 0x%llx, exit_signal %d\n",
			current->comm, (unsigned long long)args->flags,
			args->exit_signal);
	return 0;
}
NOKPROBE_SYMBOL(clone_pre);

static struct kprobe kp = {
	.symbol_name = "kernel_clone",
	.pre_handler = clone_pre,
};

static int __init jprobe_modern_init(void)
{
	int ret;

	ret = register_kprobe(&kp);
	if (ret < 0) {
		pr_err("register_kprobe on kernel_clone failed: %d\n", ret);
		return ret;
	}
	pr_info("kprobe at %pS reads argument 0\n", kp.addr);
	return 0;
}

static void __exit jprobe_modern_exit(void)
{
	unregister_kprobe(&kp);
	pr_info("kernel_clone: %d calls, %d with SIGCHLD\n",
		atomic_read(&calls), atomic_read(&logged));
}

module_init(jprobe_modern_init);
module_exit(jprobe_modern_exit);
MODULE_DESCRIPTION("kprobe reading kernel_clone()'s argument, the jprobe way");
MODULE_LICENSE("GPL");
