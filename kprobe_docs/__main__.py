"""``python -m kprobe_docs``: the same as the ``kprobe-docs`` command."""

import sys

from .cli import main

sys.exit(main())
