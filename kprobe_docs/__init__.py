"""kprobe-docs: kprobes documentation whose every example is verified on real kernels."""
