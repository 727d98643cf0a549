"""Where a worker is in its start-up: what ``/health`` and ``/readyz`` answer.

Ready means Kafka answers, both tables recovered and at least one input partition assigned;
the ``cdrveil_ready`` gauge follows every change.
"""

from __future__ import annotations

import logging
from typing import Final

from pipeline.shell.telemetry import Metrics

log = logging.getLogger("cdrveil.status")

#: ``/health``'s one-word status, and the reason ``/readyz`` gives with a 503.
REASONS: Final = {
    "waiting-for-kafka": "Kafka is not reachable",
    "loading-tables": "the consent and warrant tables are still being recovered",
    "joining-group": "no input partition is assigned (joining the group, or more workers "
    "than partitions)",
    "ready": "Kafka answers, tables recovered and partitions assigned",
}


class WorkerStatus:
    """The worker's start-up state; every change is also set on ``cdrveil_ready``."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.kafka_reachable = False
        self.tables_ready = False
        #: Input partitions assigned to this worker now.
        self.partitions = 0
        metrics.set_ready(False)

    @property
    def ready(self) -> bool:
        """Whether the worker processes records (Kafka answers, tables recovered,
        partitions assigned)."""
        return self.kafka_reachable and self.tables_ready and self.partitions > 0

    def status(self) -> str:
        """One word for ``/health``: waiting-for-kafka, loading-tables, joining-group, ready."""
        if not self.kafka_reachable:
            return "waiting-for-kafka"
        if not self.tables_ready:
            return "loading-tables"
        if not self.partitions:
            return "joining-group"
        return "ready"

    def reason(self) -> str:
        """Why the worker is (not) ready, in words."""
        return REASONS[self.status()]

    def kafka_reached(self) -> None:
        """Kafka answered (the state-table consumer connected, or a probe was answered)."""
        self._set_reachable(True)

    def kafka_lost(self) -> None:
        """Kafka stopped answering (see :mod:`pipeline.shell.liveness`)."""
        self._set_reachable(False)

    def _set_reachable(self, reachable: bool) -> None:
        was = self.ready
        self.kafka_reachable = reachable
        self._publish(was)

    def tables_recovered(self) -> None:
        """Both tables have caught up with their topics."""
        was = self.ready
        self.tables_ready = True
        self._publish(was)

    def assigned(self, partitions: int) -> None:
        """This worker now holds ``partitions`` input partitions (0 when it stops)."""
        was = self.ready
        self.partitions = partitions
        self._publish(was)

    def _publish(self, was: bool) -> None:
        """Set ``cdrveil_ready`` if readiness changed from ``was``, and say so in the log.

        This is the worker's one "ready" line: faust's own "Ready" (its services started)
        is not printed, since a worker with no broker has started its services too.
        """
        if self.ready != was:
            self._metrics.set_ready(self.ready)
            if self.ready:
                log.info("ready: %s (%d input partitions)", REASONS["ready"], self.partitions)
            else:
                log.info("not ready: %s", self.reason())
