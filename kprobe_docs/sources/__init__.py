"""What to verify and where: the samples of the pages, the targets, the architectures."""
