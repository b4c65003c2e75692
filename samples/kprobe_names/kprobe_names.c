// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe_names - probing by the names the symbol table really holds.
 *
 * Write a compiler-made copy's name (foo.isra.0) to the clone parameter:
 * the module probes it by that name, and by the name without its suffix.
 * Write the offset of a function from _stext to text_offset: the module
 * probes _stext plus that offset and reports where the probe landed.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/slab.h>
#include <linux/string.h>

static int kpn_pre(struct kprobe *p, struct pt_regs *regs)
{
	return 0;
}
NOKPROBE_SYMBOL(kpn_pre);

/* Register a probe on name+offset, report, and unregister it again. */
static int kpn_try(const char *name, unsigned int offset, const char *what)
{
	struct kprobe probe = { .symbol_name = name, .offset = offset, .pre_handler = kpn_pre };
	int ret = register_kprobe(&probe);

	if (ret == 0 && offset)
		pr_info("%s+0x%x lands at %pS\n", name, offset, probe.addr);
	else
		pr_info("%s, %s: %d\n", name, what, ret);
	if (ret == 0)
		unregister_kprobe(&probe);
	return 0;
}

static int kpn_clone(const char *val, const struct kernel_param *param)
{
	char *copy = kstrdup(val, GFP_KERNEL);
	char *name, *dot;

	if (!copy)
		return -ENOMEM;
	name = strim(copy);
	kpn_try(name, 0, "as the table names it");
	dot = strchr(name, '.');
	if (dot)
		*dot = '\0';
	kpn_try(name, 0, "the same without its suffix");
	kfree(copy);
	return 0;
}

static int kpn_text_offset(const char *val, const struct kernel_param *param)
{
	unsigned int offset;
	int ret = kstrtouint(val, 10, &offset);	/* takes the trailing newline of echo */

	if (ret)
		return ret;
	return kpn_try("_stext", offset, "an offset from _stext");
}

static const struct kernel_param_ops kpn_clone_ops = { .set = kpn_clone };
static const struct kernel_param_ops kpn_text_ops = { .set = kpn_text_offset };
module_param_cb(clone, &kpn_clone_ops, NULL, 0200);
MODULE_PARM_DESC(clone, "a suffixed name from /proc/kallsyms, e.g. foo.isra.0");
module_param_cb(text_offset, &kpn_text_ops, NULL, 0200);
MODULE_PARM_DESC(text_offset, "an offset from _stext, in decimal");

static int __init kprobe_names_init(void)
{
	pr_info("ready: write a name to clone, an offset to text_offset\n");
	return 0;
}

static void __exit kprobe_names_exit(void)
{
	pr_info("unloaded\n");
}

module_init(kprobe_names_init);
module_exit(kprobe_names_exit);
MODULE_DESCRIPTION("probing by the names /proc/kallsyms holds");
MODULE_LICENSE("GPL");
