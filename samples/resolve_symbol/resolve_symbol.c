// SPDX-License-Identifier: GPL-2.0
/*
 * resolve_symbol - find a kernel symbol's address by planting a kprobe.
 *
 * register_kprobe() resolves kp.symbol_name through kallsyms inside the
 * kernel, so registering a probe and reading kp.addr back yields an
 * address without calling kallsyms_lookup_name(), which modules can no
 * longer use.  The probe is removed again at once.  A self-check resolves
 * vfree, whose address the module also knows from its function pointer.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kallsyms.h>
#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/string.h>
#include <linux/vmalloc.h>

static char symbol[KSYM_NAME_LEN] = "kallsyms_lookup_name";
module_param_string(symbol, symbol, sizeof(symbol), 0444);
MODULE_PARM_DESC(symbol, "the function to look up");

/*
 * Plant a kprobe on @name and report where it landed.  The probe may sit
 * a few bytes into the function (after an ENDBR64 instruction on x86 with
 * IBT), so the offset is taken from "%pS" and subtracted.
 */
static int resolve(const char *name, unsigned long *start)
{
	struct kprobe kp = { .symbol_name = name };
	char where[KSYM_SYMBOL_LEN];
	unsigned long addr, off;
	char *plus;
	int ret;

	ret = register_kprobe(&kp);
	if (ret < 0)
		return ret;
	addr = (unsigned long)kp.addr;
	unregister_kprobe(&kp);

	snprintf(where, sizeof(where), "%pS", (void *)addr);
	plus = strchr(where, '+');
	if (!plus || plus - where != strlen(name) ||
	    strncmp(where, name, plus - where) ||
	    sscanf(plus, "+%lx/", &off) != 1)
		return -EINVAL;
	*start = addr - off;
	pr_info("%s: kprobe at %s, symbol at %px\n", name, where,
		(void *)*start);
	return 0;
}

static int __init resolve_symbol_init(void)
{
	unsigned long addr, check;
	int ret;

	ret = resolve(symbol, &addr);
	if (ret < 0) {
		pr_err("cannot resolve %s: %d\n", symbol, ret);
		return ret;
	}
	pr_info("resolved %s = %px\n", symbol, (void *)addr);

	ret = resolve("vfree", &check);
	if (ret < 0) {
		pr_err("cannot resolve vfree: %d\n", ret);
		return ret;
	}
	pr_info("self-check vfree: resolved %px, &vfree %px: %s\n",
		(void *)check, (void *)vfree,
		check == (unsigned long)vfree ? "match" : "MISMATCH");
	return 0;
}

static void __exit resolve_symbol_exit(void)
{
	pr_info("unloaded\n");
}

module_init(resolve_symbol_init);
module_exit(resolve_symbol_exit);
MODULE_DESCRIPTION("resolve a symbol address by registering a kprobe");
MODULE_LICENSE("GPL");
