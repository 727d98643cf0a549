"""The ``cdrveil`` command line: argument parsing and one handler per subcommand.

``main`` parses, builds settings and hands over to the package that does the job; no
decision is made here. ``main.py`` holds the commands that need no Kafka (keys,
explain, ropa, policy-check); ``commands.py`` the Kafka-facing ones, imported lazily so
that ``cdrveil explain`` does not load aiokafka. May import every other package.
"""

from pipeline.cli.main import main

__all__ = ["main"]
