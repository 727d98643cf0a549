"""How many examples each hypothesis property runs: 1,000 in `make test`, more in `make soak`."""

import os

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "1000"))
