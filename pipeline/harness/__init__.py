"""What the demo, the tests, the soak runs and the benchmarks share to run the pipeline.

- :mod:`~pipeline.harness.brokers`: a broker handle (bootstrap servers and ``stop()``) and
  the embedded tansu broker as one kind of it;
- :mod:`~pipeline.harness.workers`: settings of one isolated run, a worker process's
  environment, worker processes (started, awaited until ready, stopped; never left running);
- :mod:`~pipeline.harness.readback`: every message of some topics, read back to their end.

It may import the shell (:mod:`pipeline.shell`) and the settings; nothing in the worker
imports it. It ships in the wheel because ``cdrveil demo`` runs on it.
"""

from pipeline.harness.brokers import BrokerHandle, start_embedded_broker
from pipeline.harness.readback import read_all, read_settled, scan
from pipeline.harness.workers import (
    WorkerError,
    WorkerProcess,
    Workers,
    health,
    http_get,
    isolated_settings,
    worker_env,
)

__all__ = [
    "BrokerHandle",
    "WorkerError",
    "WorkerProcess",
    "Workers",
    "health",
    "http_get",
    "isolated_settings",
    "read_all",
    "read_settled",
    "scan",
    "start_embedded_broker",
    "worker_env",
]
