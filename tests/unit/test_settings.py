"""Settings: read from CDRVEIL_* variables and flags, checked, secrets kept out of sight."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import DEFAULT_POLICY_PATH, Secret, Settings


def test_defaults_are_the_documented_ones() -> None:
    s = Settings.from_env({})
    assert s.bootstrap_servers == "127.0.0.1:9092"
    assert s.topic_prefix == ""
    assert s.keyring_path is None
    assert s.policy_path == DEFAULT_POLICY_PATH
    assert s.policy_path.is_file()
    assert (s.partitions, s.replication_factor) == (8, 1)
    assert s.home_networks == ("24001",)
    assert (s.country_code, s.trunk_prefix) == ("46", "0")
    assert s.max_record_bytes == 65536
    assert s.group_id == "cdrveil"
    assert s.security_protocol == "PLAINTEXT"
    assert s.processing_guarantee == "at_least_once"
    assert s.web_port == 6066


def test_environment_variables_are_read_and_typed(tmp_path: Path) -> None:
    keyring = tmp_path / "k.json"
    s = Settings.from_env(
        {
            "CDRVEIL_BOOTSTRAP_SERVERS": "kafka-1:9093,kafka-2:9093",
            "CDRVEIL_TOPIC_PREFIX": "staging.",
            "CDRVEIL_KEYRING_PATH": str(keyring),
            "CDRVEIL_PARTITIONS": "16",
            "CDRVEIL_HOME_NETWORKS": "24001, 24002",
            "CDRVEIL_LOG_LEVEL": "debug",
            "CDRVEIL_PROCESSING_GUARANTEE": "EXACTLY_ONCE",
            "UNRELATED": "ignored",
        }
    )
    assert s.bootstrap_servers == "kafka-1:9093,kafka-2:9093"
    assert s.topic_prefix == "staging."
    assert s.keyring_path == keyring
    assert s.partitions == 16
    assert s.home_networks == ("24001", "24002")
    assert s.log_level == "DEBUG"
    assert s.processing_guarantee == "exactly_once"


def test_flags_override_the_environment_and_none_means_not_given() -> None:
    s = Settings.from_env(
        {"CDRVEIL_PARTITIONS": "16", "CDRVEIL_GROUP_ID": "from-env"},
        partitions=4,
        group_id=None,
        home_networks=["24007"],
    )
    assert s.partitions == 4
    assert s.group_id == "from-env"
    assert s.home_networks == ("24007",)


def test_a_misspelt_variable_is_refused_not_ignored() -> None:
    with pytest.raises(ConfigError, match="unknown setting CDRVEIL_SASL_PASSWROD"):
        Settings.from_env({"CDRVEIL_SASL_PASSWROD": "x"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CDRVEIL_PARTITIONS": "eight"}, "must be an integer"),
        ({"CDRVEIL_PARTITIONS": "0"}, "partitions must be an integer from 1"),
        ({"CDRVEIL_BOOTSTRAP_SERVERS": "localhost"}, "host:port"),
        ({"CDRVEIL_BOOTSTRAP_SERVERS": "localhost:99999"}, "host:port"),
        ({"CDRVEIL_TOPIC_PREFIX": "bad/prefix"}, "topic_prefix"),
        ({"CDRVEIL_GROUP_ID": "has space"}, "group_id"),
        ({"CDRVEIL_HOME_NETWORKS": "2400"}, "MCC-MNC"),
        ({"CDRVEIL_COUNTRY_CODE": "046"}, "country_code"),
        ({"CDRVEIL_TRUNK_PREFIX": "x"}, "trunk_prefix"),
        ({"CDRVEIL_MAX_RECORD_BYTES": "10"}, "max_record_bytes"),
        ({"CDRVEIL_SECURITY_PROTOCOL": "TLS"}, "security_protocol must be one of"),
        ({"CDRVEIL_PROCESSING_GUARANTEE": "maybe"}, "exactly_once needs Apache Kafka"),
        ({"CDRVEIL_LOG_LEVEL": "loud"}, "log_level"),
        ({"CDRVEIL_WEB_PORT": "70000"}, "web_port"),
        ({"CDRVEIL_POLICY_PATH": "/nonexistent/policy.toml"}, "policy file"),
    ],
)
def test_invalid_values_are_refused_with_a_clear_message(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_a_missing_keyring_tells_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cdrveil keys init"):
        Settings.from_env({}).require_keyring()
    absent = tmp_path / "absent.json"
    with pytest.raises(ConfigError, match=r"does not exist.*cdrveil keys init"):
        Settings.from_env({}, keyring_path=absent).require_keyring()
    absent.write_text("{}")
    assert Settings.from_env({}, keyring_path=absent).require_keyring() == absent


def test_sasl_needs_mechanism_username_and_password() -> None:
    with pytest.raises(ConfigError, match="needs sasl_mechanism"):
        Settings.from_env({"CDRVEIL_SECURITY_PROTOCOL": "SASL_SSL"})
    with pytest.raises(ConfigError, match="needs sasl_username and sasl_password"):
        Settings.from_env(
            {"CDRVEIL_SECURITY_PROTOCOL": "SASL_SSL", "CDRVEIL_SASL_MECHANISM": "PLAIN"}
        )


def test_credentials_with_a_plaintext_protocol_are_refused() -> None:
    with pytest.raises(ConfigError, match="sasl_username, sasl_password set but"):
        Settings.from_env({"CDRVEIL_SASL_USERNAME": "u", "CDRVEIL_SASL_PASSWORD": "p"})
    with pytest.raises(ConfigError, match="ssl_cafile set but security_protocol"):
        Settings.from_env({"CDRVEIL_SSL_CAFILE": "/etc/hostname"})


def test_the_password_never_shows_in_repr_or_str() -> None:
    s = Settings.from_env(
        {
            "CDRVEIL_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "CDRVEIL_SASL_MECHANISM": "scram-sha-512",
            "CDRVEIL_SASL_USERNAME": "svc-cdrveil",
            "CDRVEIL_SASL_PASSWORD": "hunter2-very-secret",
        }
    )
    assert s.sasl_mechanism == "SCRAM-SHA-512"
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s)
    assert "hunter2" not in repr(s.sasl_password)
    assert "hunter2" not in str(s.sasl_password)
    assert s.sasl_password == Secret("hunter2-very-secret")


def test_clients_receive_the_sasl_credentials() -> None:
    s = Settings.from_env(
        {},
        bootstrap_servers="kafka:9094",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="svc",
        sasl_password="pw",  # noqa: S106 - a test value
    )
    kwargs = s.kafka_client_kwargs(client_id="cdrveil-test")
    assert kwargs == {
        "bootstrap_servers": "kafka:9094",
        "client_id": "cdrveil-test",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "pw",
    }


def test_clients_receive_a_verifying_tls_context_for_sasl_ssl() -> None:
    s = Settings.from_env(
        {},
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="svc",
        sasl_password="pw",  # noqa: S106 - a test value
    )
    kwargs = s.kafka_client_kwargs()
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-256"


def test_plaintext_clients_get_no_security_extras() -> None:
    kwargs = Settings.from_env({}).kafka_client_kwargs()
    assert set(kwargs) == {"bootstrap_servers", "client_id", "security_protocol"}


def test_settings_are_frozen_and_replace_rechecks() -> None:
    s = Settings.from_env({})
    with pytest.raises(AttributeError):
        s.partitions = 3  # type: ignore[misc]
    assert s.replace(partitions=3).partitions == 3
    with pytest.raises(ConfigError):
        s.replace(partitions=-1)


def test_to_env_gives_a_child_process_the_very_same_settings(tmp_path: Path) -> None:
    """Every field survives the trip through ``CDRVEIL_*`` variables, secrets included."""
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    original = Settings.from_env(
        {},
        bootstrap_servers="a:9092,b:9093",
        topic_prefix="t1.",
        keyring_path=tmp_path / "ring.json",
        home_networks=["24001", "24002"],
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password="pw",  # noqa: S106 - a test value
        ssl_cafile=ca,
        session_timeout_ms=2000,
        stop_timeout_ms=3000,
        web_port=0,
    )
    env = original.to_env()
    assert all(name.startswith("CDRVEIL_") for name in env)
    assert Settings.from_env(env) == original
    assert Settings.from_env(Settings().to_env()) == Settings()


@pytest.mark.parametrize("value", ["99", "600001", "soon"])
def test_a_stop_timeout_outside_its_range_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match=r"(?i)stop_timeout_ms"):
        Settings.from_env({"CDRVEIL_STOP_TIMEOUT_MS": value})


async def test_the_fetch_wait_reaches_the_record_consumer() -> None:
    from pipeline.shell.clients import record_consumer

    settings = Settings.from_env({"CDRVEIL_FETCH_MAX_WAIT_MS": "20"})
    consumer = record_consumer(settings, ("cdr.voice",), None)
    try:
        assert consumer._fetch_max_wait_ms == 20
    finally:
        await consumer.stop()
