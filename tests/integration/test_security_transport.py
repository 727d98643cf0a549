"""What ``python -m pipeline worker`` puts on the wire for SASL_SSL: TLS verified against the
configured CA with the client certificate, then the SASL mechanism and user configured.

The embedded broker serves no TLS, so the worker talks to ``soak.tlsfake.SaslRecorder``, a
TLS listener that answers the Kafka handshake and records what the client sends before it
refuses the login. The worker then retries, which is all it can do; the test stops it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.settings import Settings
from soak.tlsfake import Pki, SaslRecorder, Session, make_pki
from tests.support.kafka import ROOT

pytestmark = pytest.mark.asyncio(loop_scope="session")

PASSWORD = "wire-test-Pa55word"  # noqa: S105 - the test's own, to find it on the wire


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate."""
    return make_pki(tmp_path_factory.mktemp("pki"))


def sasl_ssl_env(mechanism: str, pki: Pki, ca: Path | None = None) -> dict[str, str]:
    """The operator's settings for SASL_SSL with a client certificate."""
    return {
        "CDRVEIL_SECURITY_PROTOCOL": "SASL_SSL",
        "CDRVEIL_SASL_MECHANISM": mechanism,
        "CDRVEIL_SASL_USERNAME": "cdrveil-worker",
        "CDRVEIL_SASL_PASSWORD": PASSWORD,
        "CDRVEIL_SSL_CAFILE": str(ca or pki.ca),
        "CDRVEIL_SSL_CERTFILE": str(pki.client_cert),
        "CDRVEIL_SSL_KEYFILE": str(pki.client_key),
    }


async def first_login(recorder: SaslRecorder, within: float = 20.0) -> Session | None:
    """The first session that got as far as sending authentication bytes."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for session in recorder.sessions:
            if session.auth_bytes:
                return session
        await asyncio.sleep(0.05)
    return None


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_the_worker_logs_in_over_verified_tls_with_the_configured_mechanism_and_user(
    mechanism: str, pki: Pki, settings: Settings, real_worker: Any
) -> None:
    """TLS with the client certificate, then SASL: mechanism, user (and for PLAIN, which
    sends it, the password) as configured; SCRAM never sends the password; the log never
    shows it."""
    async with SaslRecorder(pki, require_client_cert=True) as recorder:
        target = settings.replace(bootstrap_servers=recorder.bootstrap_servers)
        worker = real_worker(target, **sasl_ssl_env(mechanism, pki))
        session = await first_login(recorder)
        worker.stop(9)
    assert session is not None, worker.log()[-3000:]
    assert session.tls
    assert session.client_certificate is not None
    subject = dict(x[0] for x in session.client_certificate["subject"])
    assert subject == {"commonName": "cdrveil-worker"}
    assert "cdrveil-tables" in session.client_ids  # the worker's first client
    assert session.mechanism == mechanism
    sent = session.auth_bytes[0]
    if mechanism == "PLAIN":
        assert sent == f"cdrveil-worker\0cdrveil-worker\0{PASSWORD}".encode()
    else:
        assert sent.startswith(b"n,,n=cdrveil-worker,r=")
        assert PASSWORD.encode() not in b"".join(session.auth_bytes)
    assert PASSWORD not in worker.log()


async def test_a_refused_login_is_reported_as_such_not_as_an_unreachable_broker(
    pki: Pki, settings: Settings, real_worker: Any
) -> None:
    """The recorder refuses every login: the worker's retry line names the credentials."""
    async with SaslRecorder(pki, require_client_cert=True) as recorder:
        target = settings.replace(bootstrap_servers=recorder.bootstrap_servers)
        worker = real_worker(target, **sasl_ssl_env("SCRAM-SHA-512", pki))
        await worker.wait_for_log("refused the login", within=30)
        worker.stop(9)
    line = next(line for line in worker.log().splitlines() if "refused the login" in line)
    assert "SaslAuthenticationFailed" in line and "CDRVEIL_SASL_PASSWORD" in line
    assert PASSWORD not in worker.log()


async def test_the_worker_sends_no_credentials_to_a_broker_its_ca_did_not_sign(
    pki: Pki, settings: Settings, real_worker: Any, tmp_path: Path
) -> None:
    """A server certificate from another CA fails the handshake: no SASL bytes at all."""
    stranger = make_pki(tmp_path / "stranger", name="another-ca")
    async with SaslRecorder(pki) as recorder:
        target = settings.replace(bootstrap_servers=recorder.bootstrap_servers)
        worker = real_worker(target, **sasl_ssl_env("PLAIN", pki, ca=stranger.ca))
        await worker.wait_for_log("CERTIFICATE_VERIFY_FAILED", within=20)
        session = await first_login(recorder, within=1)
        worker.stop(9)
    assert session is None
    assert all(not s.auth_bytes and s.mechanism is None for s in recorder.sessions)


async def test_the_topic_job_logs_in_with_the_same_settings(pki: Pki) -> None:
    """``cdrveil topics create`` (the admin client) presents the same TLS and SASL."""
    async with SaslRecorder(pki) as recorder:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CDRVEIL_")}
        env |= sasl_ssl_env("SCRAM-SHA-512", pki)
        env["CDRVEIL_BOOTSTRAP_SERVERS"] = recorder.bootstrap_servers
        job = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pipeline",
            "topics",
            "create",
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(job.communicate(), 60)
    assert job.returncode != 0  # the recorder refuses every login
    session = next((s for s in recorder.sessions if s.auth_bytes), None)
    assert session is not None, output
    assert session.tls
    assert session.mechanism == "SCRAM-SHA-512"
    assert "cdrveil-admin" in session.client_ids
    assert session.auth_bytes[0].startswith(b"n,,n=cdrveil-worker,r=")
    assert PASSWORD.encode() not in output
