"""A broker a run talks to: whatever starts it, the run needs its address and a way to stop it.

:class:`BrokerHandle` is that shape. The embedded tansu broker
(:class:`pipeline.shell.broker.EmbeddedBroker`) is one; a launcher of another kind of broker
(an Apache Kafka cluster, say) gives a handle of the same shape, so the tests, the soak runs,
the benchmarks and the demo need not know which one they run on.
"""

from __future__ import annotations

from typing import Protocol

from pipeline.shell.broker import EmbeddedBroker


class BrokerHandle(Protocol):
    """A running broker (or cluster): where clients connect, and how to stop it."""

    @property
    def bootstrap_servers(self) -> str:
        """``host:port[,host:port...]`` for Kafka clients."""
        ...

    def stop(self) -> int | None:
        """Stop every process of the broker and reap it; an exit status if there is one."""
        ...


def start_embedded_broker(timeout: float = 10.0) -> EmbeddedBroker:
    """The embedded broker on a free loopback port, answering Kafka requests.

    Its process gets SIGKILL if this process dies (``die_with_parent``); call ``stop()``
    (or use it as a context manager) to stop it in order.
    """
    return EmbeddedBroker().start(timeout)
