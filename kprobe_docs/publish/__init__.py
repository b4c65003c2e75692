"""Publishing: a reproducible release of the site, the man pages and the results, and installing the man pages."""
