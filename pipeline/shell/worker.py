"""Running the worker in the foreground (``cdrveil worker``)."""

from __future__ import annotations

import errno
import socket
from typing import NoReturn

import faust

from pipeline.errors import ConfigError
from pipeline.settings import Settings
from pipeline.shell.app import EngineFactory, create_app


class CdrveilWorker(faust.Worker):
    """faust's worker, without its "Ready" line.

    faust logs "Ready" once its services have started, which a worker with no broker does
    at once while ``/readyz`` answers 503; :class:`~pipeline.shell.status.WorkerStatus`
    logs the real "ready" line instead.
    """

    def _on_startup_end_spinner(self) -> None:
        self.log.info(
            "started; not ready until Kafka answers, the tables are recovered and input "
            "partitions are assigned (/readyz says which is missing)"
        )


def check_web_port(settings: Settings) -> None:
    """Refuse a web port already taken (a second worker on one host, say) in one line.

    Otherwise faust's web server fails deep in start-up with a 60-line traceback.
    """
    if settings.web_port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in settings.web_host else socket.AF_INET) as probe:
        # As the web server binds: an address in TIME_WAIT is free, one listened on is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.web_host, settings.web_port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise ConfigError(
                    f"web endpoints cannot listen on {settings.web_host}:{settings.web_port} "
                    f"({exc.strerror}): set --web-host / CDRVEIL_WEB_HOST"
                ) from None
            raise ConfigError(
                f"web port {settings.web_port} on {settings.web_host} is already in use "
                "(another worker on this host?): give this one another with --web-port N "
                "or CDRVEIL_WEB_PORT=N (0 turns the endpoints off)"
            ) from None


def run_worker(settings: Settings, engine_factory: EngineFactory) -> NoReturn:
    """Run a worker until SIGTERM/SIGINT, then exit 0 after the in-flight batch is committed.

    Exits 1 if a service crashes (e.g. Kafka refused outputs for good). A
    :class:`~pipeline.errors.ConfigError` from building the engine is raised before
    anything starts, for the command line to report.
    """
    check_web_port(settings)
    app = create_app(settings, engine_factory)
    worker = CdrveilWorker(
        app,
        loglevel=settings.log_level,
        quiet=True,  # no banner: the first log line says what matters
        redirect_stdouts=False,
    )
    # faust's terminal spinner sets the root logger to DEBUG (and filters in a handler), so
    # every aiokafka debug record would be built on the hot path; a worker needs no spinner.
    worker.spinner = None
    worker.execute_from_commandline()
