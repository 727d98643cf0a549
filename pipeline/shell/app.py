"""The worker's faust app, built from settings by :func:`create_app` (nothing runs at import).

faust provides the process: service lifecycle and ordering, signal handling, logging and the
HTTP endpoints: ``/healthz`` (liveness), ``/readyz`` (readiness), ``/metrics`` (Prometheus,
from :mod:`pipeline.shell.telemetry`) and ``/health`` (a JSON status for scripts). The
records flow through two services of ours, :class:`~pipeline.shell.tables.StateTables` and
:class:`~pipeline.shell.recordpath.RecordPath`, on their own aiokafka clients, so faust's own
Kafka consumer and producer are switched off: with no agents they would only join a pointless
group (on the embedded broker, for 30 s).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import faust
from faust.app.base import BootStrategy
from faust.web import Request, Response, View
from mode import ServiceT

from pipeline.core.batch import BatchEngine
from pipeline.core.policy import Policy
from pipeline.settings import Settings
from pipeline.shell import telemetry
from pipeline.shell.logs import thin_client_logs
from pipeline.shell.recordpath import RecordPath
from pipeline.shell.status import WorkerStatus
from pipeline.shell.tables import StateTables

log = logging.getLogger("cdrveil.app")

#: Libraries whose DEBUG output can carry record contents (never identifiers in our logs).
_CHATTY_LOGGERS = ("aiokafka", "kafka")

#: Builds the engine from the settings and the policy the worker runs (loaded once, here).
EngineFactory = Callable[[Settings, Policy], BatchEngine]


class _ShellBoot(BootStrategy):
    """faust's web and sensors, without faust's Kafka clients (ours do the Kafka work)."""

    enable_kafka_consumer = False
    enable_kafka_producer = False


class CdrveilApp(faust.App):
    """A faust app that runs the state tables and the record path as its services."""

    BootStrategy = _ShellBoot

    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        engine: BatchEngine,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.metrics = telemetry.Metrics()
        self.status = WorkerStatus(self.metrics)
        key_id = getattr(engine, "key_id", None)
        if isinstance(key_id, str):
            self.metrics.set_active_key(key_id)
        self.engine = engine
        self.state_tables = StateTables(
            settings, engine.consent, engine.warrants, self.metrics, self.status
        )
        self.record_path = RecordPath(
            settings, policy, engine, self.state_tables, self.metrics, self.status
        )

    def on_init_dependencies(self) -> Iterable[ServiceT]:
        """faust's services, then ours: started in this order, stopped in reverse, so the
        record path finishes and commits before the tables go away."""
        return [*super().on_init_dependencies(), self.state_tables, self.record_path]

    async def on_first_start(self) -> None:
        """No faust tables, so no data directory; but keep Kafka clients' debug lines off,
        and their repeated lines (hundreds a second with the broker gone) thinned.

        aiokafka's DEBUG lines print whole fetch and produce requests, record data included,
        so identifiers would reach the log at CDRVEIL_LOG_LEVEL=DEBUG. Logging is set up by
        faust's worker before services start, so the clamp goes here.
        """
        for name in _CHATTY_LOGGERS:
            logger = logging.getLogger(name)
            logger.setLevel(max(logger.getEffectiveLevel(), logging.INFO))
        thin_client_logs()
        # Here, not where the engine is built: faust's logging is set up by now.
        log.info("engine: %s (CDRVEIL_ENGINE)", self.engine.name)


def create_app(settings: Settings, engine_factory: EngineFactory) -> CdrveilApp:
    """Build the worker app: engine, tables, record path and web endpoints.

    The policy is loaded and the engine built here, before anything starts, so a bad
    keyring or policy is a :class:`~pipeline.errors.ConfigError` at once rather than a
    crashed worker. The policy names the output and dead-letter topics and the routes the
    metrics count.
    """
    policy = Policy.load(settings.policy_path)
    engine = engine_factory(settings, policy)
    app = CdrveilApp(
        settings,
        policy,
        engine,
        id=settings.group_id,
        broker=[f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")],
        autodiscover=False,
        web_enabled=settings.web_port != 0,
        web_port=settings.web_port or 6066,
        web_bind=settings.web_host,
        web_host=settings.web_host,
    )
    _add_pages(app)
    return app


def _add_pages(app: CdrveilApp) -> None:
    status, metrics = app.status, app.metrics

    @app.page("/health")
    async def health(view: View, request: Request) -> Response:
        """200 when records are processed, 503 while starting (with the reason)."""
        body = {
            "status": status.status(),
            "consent_states": len(app.engine.consent),
            "warrants": len(app.engine.warrants),
        }
        return view.json(body, status=200 if status.ready else 503)

    @app.page(telemetry.HEALTH_PATH)
    async def healthz(view: View, request: Request) -> Response:
        """Liveness: 200 while the process runs and its event loop answers."""
        return view.text("ok\n")

    @app.page(telemetry.READY_PATH)
    async def readyz(view: View, request: Request) -> Response:
        """Readiness: 200 once tables are recovered and partitions assigned, else 503."""
        if status.ready:
            return view.text("ready\n")
        return view.text(f"not ready: {status.reason()}\n", status=503)

    @app.page(telemetry.METRICS_PATH)
    async def prometheus(view: View, request: Request) -> Response:
        """Every metric in the Prometheus text format."""
        body, content_type = metrics.render()
        # As a header: aiohttp refuses a content_type argument that carries a charset.
        return view.bytes(body, headers={"Content-Type": content_type})
