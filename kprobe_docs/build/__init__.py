"""Build environments (a chroot per release, the target kernels) and building a sample in one."""
