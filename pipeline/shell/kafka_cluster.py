"""A local Apache Kafka cluster in KRaft mode: one node or three, as plain Java processes.

The jars come from ``kafka/pom.xml`` (``make kafka-libs`` copies them into ``.kafka/libs``
once). :class:`KafkaCluster` formats fresh storage in a temporary folder, starts each node
(broker and controller combined) as ``java -cp '.kafka/libs/*' kafka.Kafka
server.properties`` on free loopback ports, waits until every node has registered and
been unfenced, and stops every process it started on exit, on Ctrl-C and when a test
fails (each JVM also dies with the thread that started it: ``PR_SET_PDEATHSIG``).

It is the broker handle of tests, soak runs, benchmarks and ``cdrveil broker
--apache-kafka``: ``bootstrap_servers`` and ``stop()``, like
:class:`pipeline.shell.broker.EmbeddedBroker`.

Listeners, per node:

- ``PLAINTEXT`` (always): inter-broker traffic and the local administration channel. With
  the authorizer on, its anonymous principal is a super user, as a local root would be;
  clients under test use the TLS listener.
- ``SASL_SSL`` (``tls=True``): SCRAM-SHA-512 over TLS, with a CA and a server certificate
  made at start (:mod:`pipeline.shell.pki`); SCRAM users are written into the storage at
  format time (``--add-scram``), so they exist before the first client connects.
- ``CONTROLLER``: the KRaft quorum.

``authorizer=True`` turns on the KRaft ``StandardAuthorizer`` with
``allow.everyone.if.no.acl.found=false``: whatever no ACL allows is refused.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Final

from pipeline.errors import BrokerError
from pipeline.settings import Secret
from pipeline.shell.broker import LOOPBACK, die_with_parent, free_port, kafka_answers
from pipeline.shell.pki import make_server_pki
from pipeline.shell.topics import min_insync_replicas

log = logging.getLogger("cdrveil.kafka-cluster")

ROOT: Final = Path(__file__).resolve().parents[2]
#: Where ``make kafka-libs`` puts the jars of ``kafka/pom.xml``.
DEFAULT_LIBS: Final = ROOT / ".kafka" / "libs"
#: ``KAFKA_LIBS`` overrides it (not a ``CDRVEIL_*`` variable: those are settings).
LIBS_VARIABLE: Final = "KAFKA_LIBS"
SCRAM_MECHANISM: Final = "SCRAM-SHA-512"
AUTHORIZER: Final = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
#: The SCRAM super user of a TLS cluster (its password is made at start).
ADMIN_USER: Final = "admin"
#: A JVM that does not stop within this after SIGTERM is killed.
STOP_GRACE_S: Final = 15.0
#: Small heaps: up to three nodes share a 2-core machine with the tests.
JVM_OPTIONS: Final = (
    "-Xms128m",
    "-Xmx768m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
_STARTED: Final = "Kafka Server started"
_LOG4J: Final = """\
status = error
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""


def kafka_libs() -> Path:
    """The folder of Apache Kafka's jars, or a :class:`BrokerError` that says how to get them."""
    libs = Path(os.environ.get(LIBS_VARIABLE) or DEFAULT_LIBS)
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise BrokerError(
            f"Apache Kafka's jars are not in {libs}: run `make kafka-libs` (Maven copies "
            "the versions pinned in kafka/pom.xml), or point KAFKA_LIBS at a folder of them"
        )
    if shutil.which("java") is None:
        raise BrokerError("Apache Kafka needs Java 17 or later on PATH (`java` not found)")
    return libs


def kafka_version(libs: Path) -> str:
    """The version of the broker jar in ``libs`` (from its file name)."""
    jar = next(iter(sorted(libs.glob("kafka_2.13-*.jar"))), None)
    return "?" if jar is None else jar.name.removeprefix("kafka_2.13-").removesuffix(".jar")


@dataclass
class Node:
    """One combined broker and controller: its id, ports, folder and process."""

    node_id: int
    port: int
    controller_port: int
    tls_port: int | None
    folder: Path
    process: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def config(self) -> Path:
        """Its ``server.properties``."""
        return self.folder / "server.properties"

    @property
    def log_path(self) -> Path:
        """Its stdout and stderr."""
        return self.folder / "node.log"

    @property
    def pid(self) -> int | None:
        """Process id, while it runs."""
        return None if self.process is None else self.process.pid

    def running(self) -> bool:
        """Whether its process is alive (a stopped one counts as alive)."""
        return self.process is not None and self.process.poll() is None

    def output(self, tail: int = 3000) -> str:
        """The end of what it has logged."""
        try:
            return self.log_path.read_bytes()[-tail:].decode("utf-8", "replace")
        except OSError:
            return ""


class KafkaCluster:
    """An Apache Kafka cluster of ``nodes`` on loopback, in a temporary folder (``with``)."""

    def __init__(
        self,
        nodes: int = 1,
        *,
        tls: bool = False,
        authorizer: bool = False,
        users: Mapping[str, str] | None = None,
        config: Mapping[str, str] | None = None,
        libs: Path | None = None,
    ) -> None:
        if nodes < 1:
            raise BrokerError("a cluster needs at least one node")
        if (users or authorizer) and not tls:
            raise BrokerError("SCRAM users and the authorizer go with tls=True")
        self.size = nodes
        self.tls = tls
        self.authorizer = authorizer
        #: SCRAM-SHA-512 users (name -> password); ``admin`` is added with a random one.
        self.users = dict(users or {})
        if tls:
            self.users.setdefault(ADMIN_USER, secrets.token_urlsafe(18))
        self.extra_config = dict(config or {})
        self.libs = libs
        self.cluster_id = ""
        self.nodes: list[Node] = []
        self.ca_file: Path | None = None
        self._keystore: Path | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    # -- what clients need ------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """The PLAINTEXT listeners, comma separated."""
        return ",".join(f"{LOOPBACK}:{n.port}" for n in self.nodes)

    @property
    def tls_bootstrap_servers(self) -> str:
        """The SASL_SSL listeners, comma separated (``tls=True`` only)."""
        if not self.tls:
            raise BrokerError("this cluster has no TLS listener (tls=False)")
        return ",".join(f"{LOOPBACK}:{n.tls_port}" for n in self.nodes)

    def sasl_settings(self, user: str, password: str | None = None) -> dict[str, Any]:
        """Settings fields that connect as ``user`` over SASL_SSL (password: the user's own)."""
        if password is None:
            password = self.users[user]
        return {
            "bootstrap_servers": self.tls_bootstrap_servers,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": SCRAM_MECHANISM,
            "sasl_username": user,
            "sasl_password": Secret(password),
            "ssl_cafile": self.ca_file,
        }

    def write_env(self, user: str) -> Path:
        """A file of ``CDRVEIL_*`` lines that connect as ``user`` (mode 0600, deleted on stop)."""
        if self._folder is None:
            raise BrokerError("the cluster is not running")
        path = Path(self._folder.name) / f"{user}.env"
        values = self.sasl_settings(user)
        path.touch(mode=0o600)
        path.write_text(
            "".join(
                f"CDRVEIL_{k.upper()}={v.reveal() if isinstance(v, Secret) else v}\n"
                for k, v in values.items()
            )
        )
        return path

    @property
    def replication_factor(self) -> int:
        """What topics of this cluster are created with: 3, or the number of nodes."""
        return min(3, self.size)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> KafkaCluster:
        """Format storage, start every node and wait until each is registered and unfenced."""
        if self.nodes:
            raise BrokerError("the cluster is already running")
        libs = self.libs or kafka_libs()
        self.libs = libs
        self._folder = tempfile.TemporaryDirectory(prefix="cdrveil-kafka-")
        root = Path(self._folder.name)
        try:
            if self.tls:
                pki = make_server_pki(root / "tls")
                self.ca_file, self._keystore = pki.ca, pki.keystore
            self.cluster_id = _cluster_id()
            for i in range(self.size):
                folder = root / f"node-{i + 1}"
                (folder / "data").mkdir(parents=True)
                self.nodes.append(
                    Node(i + 1, free_port(), free_port(), free_port() if self.tls else None, folder)
                )
            (root / "log4j2.properties").write_text(_LOG4J)
            for node in self.nodes:
                node.config.write_text(self.properties(node))
            self._format()
            for node in self.nodes:
                self._launch(node)
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        log.info("Apache Kafka %s ready on %s", kafka_version(libs), self.bootstrap_servers)
        return self

    def properties(self, node: Node) -> str:
        """The ``server.properties`` of one node."""
        voters = ",".join(f"{n.node_id}@{LOOPBACK}:{n.controller_port}" for n in self.nodes)
        listeners = [f"PLAINTEXT://{LOOPBACK}:{node.port}"]
        advertised = list(listeners)
        protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        if self.tls:
            listeners.append(f"SASL_SSL://{LOOPBACK}:{node.tls_port}")
            advertised.append(f"SASL_SSL://{LOOPBACK}:{node.tls_port}")
            protocols.append("SASL_SSL:SASL_SSL")
        listeners.append(f"CONTROLLER://{LOOPBACK}:{node.controller_port}")
        replicas = self.replication_factor
        min_isr = min_insync_replicas(replicas)
        config: dict[str, str] = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(advertised),
            "listener.security.protocol.map": ",".join(protocols),
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(node.folder / "data"),
            # Durability as deployed (deploy/compose): 3 replicas, 2 in sync for a write.
            "default.replication.factor": str(replicas),
            "min.insync.replicas": str(min_isr),
            "offsets.topic.replication.factor": str(replicas),
            "transaction.state.log.replication.factor": str(replicas),
            "transaction.state.log.min.isr": str(min_isr),
            "unclean.leader.election.enable": "false",
            "auto.create.topics.enable": "false",
            # Fewer internal partitions than the defaults (50): quicker start on 2 cores.
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.num.partitions": "8",
            "group.initial.rebalance.delay.ms": "0",
            # Tests and demos run workers with short sessions (2 s) to restart them quickly.
            "group.min.session.timeout.ms": "1000",
            # A killed producer's open transaction is aborted within a second of its timeout.
            "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.cleaner.threads": "1",
        }
        if self.tls:
            config |= {
                "sasl.enabled.mechanisms": SCRAM_MECHANISM,
                "listener.name.sasl_ssl.sasl.enabled.mechanisms": SCRAM_MECHANISM,
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                ),
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": str(self._keystore),
                "ssl.client.auth": "none",
            }
        if self.authorizer:
            config |= {
                "authorizer.class.name": AUTHORIZER,
                "allow.everyone.if.no.acl.found": "false",
                "super.users": f"User:ANONYMOUS;User:{ADMIN_USER}",
            }
        config |= self.extra_config
        return "".join(f"{k}={v}\n" for k, v in config.items())

    def _java(self, main: str, *args: str) -> list[str]:
        assert self.libs is not None  # noqa: S101 - set by start
        log4j = self.nodes[0].folder.parent / "log4j2.properties"
        return [
            "java",
            *JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    def _format(self) -> None:
        """Format every node's storage with the cluster id and the SCRAM users (in parallel)."""
        scram = []
        for name, password in self.users.items():
            scram += ["--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]"]
        running = [
            subprocess.Popen(  # noqa: S603 - fixed command, no shell
                self._java(
                    "kafka.tools.StorageTool",
                    "format",
                    "--cluster-id",
                    self.cluster_id,
                    "--config",
                    str(node.config),
                    *scram,
                ),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )
            for node in self.nodes
        ]
        failures = []
        for node, process in zip(self.nodes, running, strict=True):
            out, _ = process.communicate(timeout=120)
            if process.returncode != 0:
                text = out.decode("utf-8", "replace").strip()[-1500:]
                failures.append(f"node {node.node_id}: {text}")
        if failures:
            raise BrokerError("formatting Kafka storage failed: " + "; ".join(failures))

    def _launch(self, node: Node) -> None:
        node.log_file = node.log_path.open("ab")
        node.process = subprocess.Popen(  # noqa: S603 - fixed command, no shell
            self._java("kafka.Kafka", str(node.config)),
            stdin=subprocess.DEVNULL,
            stdout=node.log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )

    def wait_ready(self, timeout: float = 120.0, nodes: list[Node] | None = None) -> None:
        """Wait until every node (or those given) logged its start and answers Kafka."""
        waiting = list(self.nodes if nodes is None else nodes)
        deadline = time.monotonic() + timeout
        while waiting:
            for node in list(waiting):
                if not node.running():
                    raise BrokerError(
                        f"Kafka node {node.node_id} exited at start:\n{node.output()}"
                    )
                if _STARTED in node.output(200_000) and kafka_answers(LOOPBACK, node.port, 0.5):
                    waiting.remove(node)
            if waiting and time.monotonic() > deadline:
                ids = ", ".join(str(n.node_id) for n in waiting)
                raise BrokerError(f"Kafka node(s) {ids} not ready within {timeout:.0f} s")
            time.sleep(0.1)

    def node(self, node_id: int) -> Node:
        """The node with this id (1-based)."""
        return self.nodes[node_id - 1]

    def kill(self, node_id: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to a node (SIGKILL, SIGSTOP, SIGCONT ...); reap it if it died."""
        node = self.node(node_id)
        if node.process is None:
            return
        if sig == signal.SIGSTOP or sig == signal.SIGCONT:
            node.process.send_signal(sig)
            return
        node.process.send_signal(sig)
        node.process.wait(STOP_GRACE_S)

    def restart(self, node_id: int, timeout: float = 120.0) -> None:
        """Start a node again on its ports and storage (after :meth:`kill`)."""
        node = self.node(node_id)
        if node.running():
            raise BrokerError(f"Kafka node {node_id} is still running")
        if node.log_file is not None:
            node.log_file.close()
        # Only the new process's start counts: the log restarts.
        node.log_path.unlink(missing_ok=True)
        self._launch(node)
        self.wait_ready(timeout, [node])

    def stop(self) -> None:
        """Stop every node (SIGTERM, SIGKILL after a grace period) and remove the storage."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGCONT)  # a stopped JVM cannot exit
                node.process.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                node.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
            if node.log_file is not None:
                node.log_file.close()
        self.nodes = []
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding.

    One that starts with ``-`` is drawn again, as Kafka's ``Uuid.randomUuid`` does: the
    storage tool's argument parser reads ``--cluster-id -x...`` as a missing value and
    refuses the format (1 cluster in 64 failed to start that way).
    """
    import base64

    while True:
        text = base64.urlsafe_b64encode(random_bytes()).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def run_cluster(cluster: KafkaCluster, on_ready: Callable[[KafkaCluster], None]) -> int:
    """Run ``cluster`` in the foreground until SIGINT/SIGTERM (``cdrveil broker --apache-kafka``).

    ``on_ready`` is called once every node is ready (the CLI prints the addresses there).
    0 after a signal, 1 if a node stopped by itself. The cluster is stopped in every case.
    """
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        cluster.start()
        on_ready(cluster)
        dead: Node | None = None
        while not stopping and dead is None:
            dead = next((n for n in cluster.nodes if not n.running()), None)
            time.sleep(0.2)
        if dead is not None:
            log.error("Kafka node %d stopped by itself:\n%s", dead.node_id, dead.output())
            return 1
        return 0
    finally:
        cluster.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
