"""``python -m benchmarks [FLAGS]``: the same as ``cdrveil bench [FLAGS]``."""

import sys

from pipeline.cli import main

sys.exit(main(["bench", *sys.argv[1:]]))
