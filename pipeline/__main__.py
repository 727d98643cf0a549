"""``python -m pipeline`` runs the ``cdrveil`` command."""

import sys

from pipeline.cli import main

sys.exit(main())
