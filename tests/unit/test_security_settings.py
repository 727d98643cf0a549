"""SASL and TLS settings reach the Kafka clients: from ``CDRVEIL_*`` variables through
``Settings.kafka_client_kwargs`` into the very aiokafka objects the worker builds
(``pipeline.shell.clients``), never into ``repr``."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener

from pipeline.errors import ConfigError
from pipeline.settings import Settings
from pipeline.shell import clients
from pipeline.shell.clients import publisher as generate_producer
from soak.tlsfake import Pki, make_pki

PASSWORD = "pa55-w0rd-for-the-test"  # noqa: S105 - the test's own, to follow it
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throw-away CA with a client certificate."""
    return make_pki(tmp_path_factory.mktemp("pki"))


class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """A rebalance listener that does nothing."""

    async def on_partitions_revoked(self, revoked: object) -> None:
        """Nothing to do."""

    async def on_partitions_assigned(self, assigned: object) -> None:
        """Nothing to do."""


def env_for(protocol: str, mechanism: str | None, pki: Pki, client_cert: bool) -> dict[str, str]:
    """The environment an operator sets (deploy/README.md, SASL_SSL)."""
    env = {"CDRVEIL_SECURITY_PROTOCOL": protocol}
    if mechanism is not None:
        env |= {
            "CDRVEIL_SASL_MECHANISM": mechanism,
            "CDRVEIL_SASL_USERNAME": "cdrveil-worker",
            "CDRVEIL_SASL_PASSWORD": PASSWORD,
        }
    if protocol.endswith("SSL"):
        env["CDRVEIL_SSL_CAFILE"] = str(pki.ca)
        if client_cert:
            env["CDRVEIL_SSL_CERTFILE"] = str(pki.client_cert)
            env["CDRVEIL_SSL_KEYFILE"] = str(pki.client_key)
    return env


def connection_of(client: AIOKafkaConsumer | AIOKafkaProducer) -> dict[str, Any]:
    """What the client will connect with (aiokafka keeps it on its ``AIOKafkaClient``)."""
    inner = client.client if isinstance(client, AIOKafkaProducer) else client._client
    return {
        "security_protocol": inner._security_protocol,
        "sasl_mechanism": inner._sasl_mechanism,
        "sasl_plain_username": inner._sasl_plain_username,
        "sasl_plain_password": inner._sasl_plain_password,
        "ssl_context": inner._ssl_context,
    }


def assert_verifies_brokers(context: ssl.SSLContext, pki: Pki) -> None:
    """TLS that checks the broker's certificate and name against the configured CA."""
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    subjects = [dict(x[0] for x in cert["subject"]) for cert in context.get_ca_certs()]
    assert {"commonName": "cdrveil-test-ca"} in subjects


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT"])
async def test_sasl_and_tls_settings_reach_every_client_the_worker_builds(
    protocol: str, mechanism: str, pki: Pki
) -> None:
    """The table consumer, the record consumer and the producer of a worker, and the
    generator's producer, all get the protocol, mechanism, user, password and TLS context."""
    settings = Settings.from_env(env_for(protocol, mechanism, pki, client_cert=True))
    kwargs = settings.kafka_client_kwargs("cdrveil-test")
    assert kwargs["security_protocol"] == protocol
    assert kwargs["sasl_mechanism"] == mechanism
    assert kwargs["sasl_plain_username"] == "cdrveil-worker"
    assert kwargs["sasl_plain_password"] == PASSWORD
    built = [
        clients.table_consumer(settings),
        clients.record_consumer(settings, ("cdr.voice", "cdr.sms"), Listener()),
        clients.producer(settings),
        generate_producer(settings),
    ]
    for client in built:
        seen = connection_of(client)
        await client.stop()
        assert seen["security_protocol"] == protocol
        assert seen["sasl_mechanism"] == mechanism
        assert seen["sasl_plain_username"] == "cdrveil-worker"
        assert seen["sasl_plain_password"] == PASSWORD
        if protocol == "SASL_SSL":
            assert_verifies_brokers(seen["ssl_context"], pki)
        else:
            assert seen["ssl_context"] is None
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)


async def test_tls_without_sasl_reaches_the_clients_with_the_client_certificate(pki: Pki) -> None:
    """SSL: a verifying context with the client certificate loaded, no SASL at all."""
    settings = Settings.from_env(env_for("SSL", None, pki, client_cert=True))
    assert not any(name.startswith("sasl") for name in settings.kafka_client_kwargs())
    for client in (clients.producer(settings), clients.table_consumer(settings)):
        seen = connection_of(client)
        await client.stop()
        assert seen["security_protocol"] == "SSL"
        assert seen["sasl_plain_username"] is None
        assert seen["sasl_plain_password"] is None
        assert_verifies_brokers(seen["ssl_context"], pki)


async def test_plaintext_clients_get_neither_sasl_nor_tls() -> None:
    """The default: PLAINTEXT, no credentials, no context."""
    settings = Settings.from_env({})
    assert set(settings.kafka_client_kwargs()) == {
        "bootstrap_servers",
        "client_id",
        "security_protocol",
    }
    client = clients.producer(settings)
    seen = connection_of(client)
    await client.stop()
    assert seen["security_protocol"] == "PLAINTEXT"
    assert seen["sasl_plain_username"] is None
    assert seen["ssl_context"] is None


def test_a_client_certificate_that_does_not_match_its_key_is_refused(
    pki: Pki, tmp_path: Path
) -> None:
    """Building the TLS context loads the files, so a wrong key fails at start, not later."""
    other = make_pki(tmp_path / "other")
    env = env_for("SASL_SSL", "SCRAM-SHA-512", pki, client_cert=True)
    env["CDRVEIL_SSL_KEYFILE"] = str(other.client_key)
    with pytest.raises(ssl.SSLError):
        Settings.from_env(env).kafka_client_kwargs()


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"CDRVEIL_SECURITY_PROTOCOL": "SASL_SSL"}, "needs sasl_mechanism"),
        (
            {"CDRVEIL_SECURITY_PROTOCOL": "SASL_SSL", "CDRVEIL_SASL_MECHANISM": "GSSAPI"},
            "needs sasl_mechanism",
        ),
        (
            {"CDRVEIL_SECURITY_PROTOCOL": "SASL_SSL", "CDRVEIL_SASL_MECHANISM": "PLAIN"},
            "needs sasl_username and sasl_password",
        ),
        ({"CDRVEIL_SASL_PASSWORD": PASSWORD}, "use SASL_SSL"),
        ({"CDRVEIL_SSL_CAFILE": "/etc/hostname"}, "use SSL or SASL_SSL"),
        ({"CDRVEIL_SASL_PASWORD": PASSWORD}, "unknown setting CDRVEIL_SASL_PASWORD"),
    ],
)
def test_incomplete_or_misspelt_security_settings_are_refused_without_the_password(
    env: dict[str, str], says: str
) -> None:
    """A worker never runs believing it is protected when it is not."""
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(env)
    assert says in str(refused.value)
    assert PASSWORD not in str(refused.value)
