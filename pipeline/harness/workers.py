"""Worker processes of a run: their settings and environment, start, readiness, stop.

A :class:`WorkerProcess` runs ``python -m pipeline worker`` (or another command of the same
kind, like the tests' fake worker or a benchmark baseline) with its output in a log file.
On Linux it gets SIGKILL from the kernel when the process that started it dies
(:func:`pipeline.shell.broker.die_with_parent`), so a crashed run leaves nothing behind.
:class:`Workers` keeps every process a run started and kills those still running at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from pipeline.errors import CdrveilError
from pipeline.settings import ENV_PREFIX, Settings
from pipeline.shell.broker import die_with_parent
from pipeline.shell.telemetry import READY_PATH

#: A worker's SIGTERM finishes the batch in flight and commits; this is plenty.
STOP_GRACE_S = 30.0


class WorkerError(CdrveilError, RuntimeError):
    """A worker process exited, or did not do what a run waited for, in time."""


def isolated_settings(bootstrap_servers: str, tag: str, **changes: Any) -> Settings:
    """Settings of one run on a shared broker: topics and group of its own (``tag`` plus a
    random suffix), 4 partitions, a 2 s session timeout (the embedded broker makes a joining
    member wait half of it) and no web port unless ``changes`` say otherwise."""
    unique = f"{tag}{uuid.uuid4().hex[:10]}"
    values: dict[str, Any] = {
        "topic_prefix": f"{unique}.",
        "group_id": unique,
        "partitions": 4,
        "session_timeout_ms": 2000,
        "web_port": 0,
    }
    return Settings.from_env({}, bootstrap_servers=bootstrap_servers, **(values | changes))


def worker_env(
    settings: Settings | None, keyring: Path | None = None, **extra: str
) -> dict[str, str]:
    """The environment of a worker process for ``settings``: this process's environment
    without any ``CDRVEIL_*`` variable, then the settings', the keyring path and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    if settings is not None:
        env.update(settings.to_env())
    if keyring is not None:
        env[ENV_PREFIX + "KEYRING_PATH"] = str(keyring)
    env.update(extra)
    return env


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """Status and body of ``GET http://127.0.0.1:PORT/PATH``; (0, b"") if nothing answers."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as refusal:
        return refusal.code, bytes(refusal.read())
    except OSError:
        return 0, b""


def health(port: int) -> dict[str, Any]:
    """The worker's ``/health`` body (200 or 503); ``{"status": "down"}`` if nothing answers."""
    status, body = http_get(port, "/health", timeout=1.0)
    if status == 0:
        return {"status": "down"}
    try:
        answer = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        return {"status": "down"}
    return answer if isinstance(answer, dict) else {"status": "down"}


class WorkerProcess:
    """One worker process and the file its stdout and stderr go to."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        log_path: Path,
        env: dict[str, str],
        name: str = "worker",
        web_port: int | None = None,
        own_log: bool = False,
    ) -> None:
        self.process = process
        self.log_path = log_path
        self.env = env
        self.name = name
        port = env.get(ENV_PREFIX + "WEB_PORT", "0") if web_port is None else web_port
        #: Port of its HTTP endpoints (0: none).
        self.web_port = int(port)
        self._own_log = own_log

    @classmethod
    def start(
        cls,
        env: dict[str, str],
        log_path: Path | None = None,
        argv: Sequence[str] | None = None,
        cwd: Path | None = None,
        name: str = "worker",
        web_port: int | None = None,
    ) -> WorkerProcess:
        """Start ``argv`` (default: ``python -m pipeline worker``) with exactly ``env``.

        Its output is appended to ``log_path`` (default: a temporary file, removed by
        :meth:`close`).
        """
        own_log = log_path is None
        if log_path is None:
            handle, name_of_log = tempfile.mkstemp(prefix="cdrveil-worker-", suffix=".log")
            os.close(handle)
            log_path = Path(name_of_log)
        command = list(argv) if argv is not None else [sys.executable, "-m", "pipeline", "worker"]
        with log_path.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - our interpreter and modules, no shell
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )
        return cls(process, log_path, env, name, web_port, own_log)

    @property
    def pid(self) -> int:
        """Its process id."""
        return self.process.pid

    def running(self) -> bool:
        """Whether it has not exited yet."""
        return self.process.poll() is None

    def log(self) -> str:
        """Everything it has written so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, chars: int = 3000) -> str:
        """The end of its log, for an error message."""
        return self.log()[-chars:]

    def _exited(self, doing: str) -> WorkerError:
        return WorkerError(
            f"{self.name} {self.pid} exited ({self.process.returncode}) {doing}:\n"
            + self.log_tail()
        )

    def stop(
        self, sig: int = signal.SIGTERM, wait: float = STOP_GRACE_S, strict: bool = True
    ) -> int:
        """Send ``sig`` (if alive) and reap it; its exit status.

        If it is still running after ``wait`` s it gets SIGKILL; then ``strict`` raises
        :class:`WorkerError` with its log, else the status of the kill is returned.
        """
        if self.running():
            self.process.send_signal(sig)
        try:
            return self.process.wait(wait)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
            if strict:
                raise WorkerError(
                    f"{self.name} {self.pid} ignored signal {sig} for {wait} s:\n" + self.log_tail()
                ) from None
            return code

    def close(self) -> None:
        """Kill it if it still runs, reap it, and remove a temporary log."""
        if self.running():
            self.process.kill()
        self.process.wait()
        if self._own_log:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    async def wait_for_log(self, text: str, within: float = 60.0) -> None:
        """Until its log contains ``text``; exiting first or a timeout is a :class:`WorkerError`."""
        deadline = time.monotonic() + within
        while text not in self.log():
            if not self.running():
                if text in self.log():
                    return
                raise self._exited(f"before logging {text!r}")
            if time.monotonic() > deadline:
                raise WorkerError(f"{self.name} never logged {text!r}:\n{self.log_tail()}")
            await asyncio.sleep(0.05)

    async def wait_ready(self, within: float = 60.0, port: int | None = None) -> None:
        """Until ``/readyz`` answers 200 (it must keep running); a :class:`WorkerError` if not."""
        web_port = self.web_port if port is None else port
        if not web_port:
            raise WorkerError(f"{self.name} has no web port to ask whether it is ready")
        deadline = time.monotonic() + within
        while http_get(web_port, READY_PATH, timeout=1.0)[0] != 200:
            if not self.running():
                raise self._exited("before it was ready")
            if time.monotonic() > deadline:
                raise WorkerError(f"{READY_PATH} never answered 200:\n{self.log_tail()}")
            await asyncio.sleep(0.05)

    async def wait_exit(self, within: float) -> int | None:
        """The exit status if it ends within ``within`` s, else ``None``."""
        deadline = time.monotonic() + within
        while self.running() and time.monotonic() < deadline:  # noqa: ASYNC110 - a child process
            await asyncio.sleep(0.05)
        return self.process.poll()


class Workers:
    """Every worker process of one run; :meth:`close` kills those still running.

    Each is started with :func:`worker_env` of the run's settings and keyring (or of the
    settings given to :meth:`spawn`), ``env`` on top; its log is ``logs/worker-N.log``
    (a temporary file if ``logs`` is ``None``).
    """

    def __init__(
        self,
        settings: Settings | None,
        keyring: Path | None,
        logs: Path | None,
        argv: Sequence[str] | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.keyring = keyring
        self.logs = logs
        self.argv = argv
        self.cwd = cwd
        self.env = env or {}
        self.started: list[WorkerProcess] = []

    def spawn(self, settings: Settings | None = None, **extra_env: str) -> WorkerProcess:
        """Start one more worker (with ``settings`` instead of the run's, if given)."""
        env = worker_env(settings or self.settings, self.keyring, **self.env, **extra_env)
        n = len(self.started) + 1
        path = None if self.logs is None else self.logs / f"worker-{n}.log"
        worker = WorkerProcess.start(env, path, self.argv, self.cwd, name=f"worker {n}")
        self.started.append(worker)
        return worker

    def all_logs(self) -> str:
        """The output of every worker started, in order."""
        return "".join(worker.log() for worker in self.started)

    def close(self) -> None:
        """Kill and reap every worker still running."""
        for worker in self.started:
            worker.close()
