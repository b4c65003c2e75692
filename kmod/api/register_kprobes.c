// SPDX-License-Identifier: GPL-2.0
/* API probe: batch registration with register_kprobes() and register_kretprobes(). */
#include <linux/kprobes.h>
#include <linux/module.h>

static struct kprobe *probes[1];
static struct kretprobe *rprobes[1];

static int __init api_init(void)
{
	int ret = register_kprobes(probes, 0);

	return ret ? ret : register_kretprobes(rprobes, 0);
}

module_init(api_init);
MODULE_DESCRIPTION("kprobe-docs API probe: register_kprobes");
MODULE_LICENSE("GPL");
