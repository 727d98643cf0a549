"""Running the worker in the foreground (``cdrveil worker``)."""

from __future__ import annotations

from typing import NoReturn

import faust

from pipeline.settings import Settings
from pipeline.shell.app import EngineFactory, create_app


def run_worker(settings: Settings, engine_factory: EngineFactory) -> NoReturn:
    """Run a worker until SIGTERM/SIGINT, then exit 0 after the in-flight batch is committed.

    Exits 1 if a service crashes (e.g. Kafka refused outputs for good). A
    :class:`~pipeline.errors.ConfigError` from building the engine is raised before
    anything starts, for the command line to report.
    """
    app = create_app(settings, engine_factory)
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        quiet=True,  # no banner: the first log line says what matters
        redirect_stdouts=False,
    )
    # faust's terminal spinner sets the root logger to DEBUG (and filters in a handler), so
    # every aiokafka debug record would be built on the hot path; a worker needs no spinner.
    worker.spinner = None
    worker.execute_from_commandline()
