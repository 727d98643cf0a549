"""``python -m benchmarks [FLAGS]`` (``make bench``): every benchmark, one table, one JSON file."""

import sys

from benchmarks.suite import main

sys.exit(main())
