"""Runners: QEMU guests, test machines; each produces the agents' markers."""
