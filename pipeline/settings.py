"""Settings, read once into a frozen object from ``CDRVEIL_*`` variables and command-line flags.

Every field can be set by an environment variable named ``CDRVEIL_`` + the field name in
upper case (``CDRVEIL_BOOTSTRAP_SERVERS``, ``CDRVEIL_SASL_PASSWORD`` ...); a command-line
flag given to :meth:`Settings.from_env` as an override wins over the environment. Values are
checked when the object is built, so a worker refuses to start on a wrong setting instead of
failing later. Secrets have no default and never appear in ``repr``, ``str`` or logs.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from pipeline import defaults
from pipeline.errors import ConfigError

ENV_PREFIX: Final = "CDRVEIL_"

#: The policy shipped in the package, used when no policy path is configured.
DEFAULT_POLICY_PATH: Final = Path(__file__).resolve().parent / "policies" / "default.toml"

SECURITY_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
PROCESSING_GUARANTEES: Final = ("at_least_once", "exactly_once")
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ENGINES: Final = ("native", "python")

# Kafka's own rules: topic names of [a-zA-Z0-9._-], at most 249 characters. The longest
# name we derive is an analytics topic; 200 leaves room for the purpose name.
_TOPIC_CHARS = re.compile(r"^[A-Za-z0-9._-]*$")
_MAX_PREFIX = 200
_GROUP_ID = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$")
_MCC_MNC = re.compile(r"^\d{5,6}$")


class Secret:
    """A string that does not show itself: ``repr`` and ``str`` print stars."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that must hand it to a client."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a cdrveil process needs to know about its environment."""

    #: Comma-separated ``host:port`` list of Kafka brokers.
    bootstrap_servers: str = "127.0.0.1:9092"
    #: Prepended to every topic name (e.g. ``"staging."``).
    topic_prefix: str = ""
    #: The keyring file with the pseudonymization secrets; required by the worker.
    keyring_path: Path | None = None
    #: The policy file; the packaged default policy when not set.
    policy_path: Path = DEFAULT_POLICY_PATH
    #: Partitions of every topic that ``cdrveil topics create`` makes.
    partitions: int = 8
    replication_factor: int = 1
    #: MCC-MNC codes of the home network(s); records elsewhere count as roaming.
    home_networks: tuple[str, ...] = defaults.HOME_NETWORKS
    country_code: str = defaults.COUNTRY_CODE
    trunk_prefix: str = defaults.TRUNK_PREFIX
    #: Larger input messages are dead-lettered as ``oversize``.
    max_record_bytes: int = defaults.MAX_RECORD_BYTES
    #: Consumer group of the workers.
    group_id: str = "cdrveil"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = field(default=None, repr=False)
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    #: ``exactly_once`` needs a broker with transactions (Apache Kafka); the embedded
    #: development broker has none, so against it the pipeline is ``at_least_once``.
    processing_guarantee: str = "at_least_once"
    #: The record engine: ``native`` (compiled, the fast path) or ``python`` (the reference
    #: the native one is proven equal to; what ``explain`` runs).
    engine: str = "native"
    #: Input records taken from Kafka and processed as one batch.
    batch_max_records: int = 2000
    linger_ms: int = 5
    #: How long the record consumer lets the broker hold a fetch while no input is waiting.
    #: Brokers answer at this deadline when little is waiting, so it sets the latency
    #: floor under light load; lower costs more fetch requests (see README, tuning).
    fetch_max_wait_ms: int = 100
    #: Consumer-group session timeout. The embedded broker makes a joining member wait
    #: half of it before the first assignment, so a small value starts workers quickly.
    session_timeout_ms: int = 6000
    #: How long a stopping worker waits for Kafka to acknowledge the outputs in flight.
    #: Past it (the broker is gone, say) the worker stops without committing them and
    #: exits 1; the records are processed again by the next worker. Keep it below the
    #: orchestrator's grace period (Kubernetes: terminationGracePeriodSeconds).
    stop_timeout_ms: int = 15000
    #: Port of the health and metrics HTTP endpoints; 0 turns them off.
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        for check in _CHECKS:
            check(self)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        flag_names: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Read ``CDRVEIL_*`` variables from ``env`` (default ``os.environ``), then apply
        ``overrides`` (command-line flags; a ``None`` value means "flag not given").

        ``flag_names`` maps a setting to its flag (``keyring_path``: ``--keyring``), so a
        refusal names what the user typed."""
        environ = os.environ if env is None else env
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        given: dict[str, str] = {}  # setting -> the variable or flag that gave it
        for name, raw in environ.items():
            if not name.startswith(ENV_PREFIX):
                continue
            key = name[len(ENV_PREFIX) :].lower()
            if key not in known:
                # A misspelt security setting silently ignored is worse than a refusal.
                raise ConfigError(unknown_variable(name, known))
            values[key] = _parse(key, raw, f"environment variable {name}")
            given[key] = name
        for key, value in overrides.items():
            if key not in known:
                raise ConfigError(f"unknown setting {key!r}")
            if value is None:
                continue
            if isinstance(value, str):
                value = _parse(key, value, (flag_names or {}).get(key, f"option {key}"))
            values[key] = _coerce(key, value)
            given[key] = (flag_names or {}).get(key, "--" + key.replace("_", "-"))
        try:
            return cls(**values)
        except ConfigError as exc:
            # Say where the wrong value came from (never the value: it may be a secret).
            name = str(exc).split(" ", 1)[0]
            if name in given:
                raise ConfigError(f"{given[name]}: {exc}") from None
            raise

    def to_env(self) -> dict[str, str]:
        """The ``CDRVEIL_*`` variables that give a child process these settings.

        The SASL password is among them, in clear: the result belongs in a child's
        environment, never in a log.
        """
        env: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, Secret):
                text = value.reveal()
            elif isinstance(value, tuple):
                text = ",".join(value)
            else:
                text = str(value)
            env[ENV_PREFIX + f.name.upper()] = text
        return env

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (checked like the original)."""
        return dataclasses.replace(self, **changes)

    def require_keyring(self) -> Path:
        """The keyring path, or a :class:`ConfigError` that says how to create one."""
        if self.keyring_path is None:
            path = "./cdrveil.keyring.json"
            raise ConfigError(
                f"no keyring configured: create one with `cdrveil keys init --keyring {path}`, "
                f"then pass --keyring {path} (or set CDRVEIL_KEYRING_PATH={path})"
            )
        if not self.keyring_path.is_file():
            raise ConfigError(
                f"keyring {self.keyring_path} does not exist: create it with "
                f"`cdrveil keys init --keyring {self.keyring_path}`"
            )
        return self.keyring_path

    @property
    def is_sasl(self) -> bool:
        """Whether the connection authenticates with SASL."""
        return self.security_protocol.startswith("SASL_")

    @property
    def is_ssl(self) -> bool:
        """Whether the connection is encrypted with TLS."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    def kafka_client_kwargs(self, client_id: str = "cdrveil") -> dict[str, Any]:
        """Keyword arguments shared by every aiokafka client (connection and security)."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": client_id,
            "security_protocol": self.security_protocol,
        }
        if self.is_sasl:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = (
                None if self.sasl_password is None else self.sasl_password.reveal()
            )
        if self.is_ssl:
            kwargs["ssl_context"] = self.ssl_context()
        return kwargs

    def ssl_context(self) -> ssl.SSLContext:
        """A TLS client context that verifies the brokers (the CA file if given)."""
        context = ssl.create_default_context(
            cafile=None if self.ssl_cafile is None else str(self.ssl_cafile)
        )
        if self.ssl_certfile is not None:
            context.load_cert_chain(
                str(self.ssl_certfile),
                None if self.ssl_keyfile is None else str(self.ssl_keyfile),
            )
        return context


def variable(name: str) -> str:
    """The environment variable of the setting ``name`` (``web_port``: ``CDRVEIL_WEB_PORT``)."""
    return ENV_PREFIX + name.upper()


def default_text(name: str) -> str:
    """The default of the setting ``name`` as a person reads it (for ``--help`` and README)."""
    value = _FIELDS[name].default
    if name == "policy_path":
        return "the packaged default policy"
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value) if value != "" else "empty"


def unknown_variable(name: str, known: Iterable[str]) -> str:
    """The refusal of an unknown ``CDRVEIL_*`` variable, with the nearest known one if close."""
    names = sorted(variable(k) for k in known)
    close = difflib.get_close_matches(name.upper(), names, n=1, cutoff=0.8)
    if close:
        return f"unknown setting {name}: did you mean {close[0]}?"
    return f"unknown setting {name}; known: {', '.join(names)}"


# -- parsing --------------------------------------------------------------------------------

_INTS: Final = frozenset(
    {
        "partitions",
        "replication_factor",
        "max_record_bytes",
        "batch_max_records",
        "linger_ms",
        "fetch_max_wait_ms",
        "session_timeout_ms",
        "stop_timeout_ms",
        "web_port",
    }
)
_PATHS: Final = frozenset(
    {"keyring_path", "policy_path", "ssl_cafile", "ssl_certfile", "ssl_keyfile"}
)
_STRINGS: Final = frozenset(
    {
        "bootstrap_servers",
        "topic_prefix",
        "country_code",
        "trunk_prefix",
        "group_id",
        "security_protocol",
        "sasl_mechanism",
        "sasl_username",
        "processing_guarantee",
        "engine",
        "web_host",
        "log_level",
    }
)


def _parse(key: str, raw: str, where: str) -> Any:
    """Turn the text of a variable or flag into the field's type."""
    text = raw.strip()
    if key in _INTS:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{where} must be an integer") from None
    if key == "policy_path" and not text:
        return DEFAULT_POLICY_PATH
    if key in _PATHS:
        return Path(text).expanduser() if text else None
    if key == "home_networks":
        return tuple(part.strip() for part in text.split(",") if part.strip())
    if key == "sasl_password":
        return Secret(raw) if raw else None
    if key in ("security_protocol", "sasl_mechanism", "log_level"):
        return text.upper() or None
    if key in ("processing_guarantee", "engine"):
        return text.lower()
    return text


def _coerce(key: str, value: Any) -> Any:
    """Accept natural Python values for overrides (a ``str`` password, a list of networks)."""
    if key == "sasl_password" and isinstance(value, str):
        return Secret(value)
    if key == "home_networks" and isinstance(value, list | tuple | frozenset | set):
        return tuple(value)
    if key in _PATHS and isinstance(value, os.PathLike):
        return Path(value)
    return value


# -- checks (each raises ConfigError with what is wrong and how to fix it) -----------------


def _int_in(name: str, low: int, high: int) -> Callable[[Settings], None]:
    def check(s: Settings) -> None:
        value = getattr(s, name)
        if type(value) is not int or not low <= value <= high:
            raise ConfigError(f"{name} must be an integer from {low} to {high}")

    return check


def _check_types(s: Settings) -> None:
    optional = ("sasl_mechanism", "sasl_username")
    for name in _STRINGS:
        value = getattr(s, name)
        if not isinstance(value, str) and not (value is None and name in optional):
            raise ConfigError(f"{name} must be a string")
    if not isinstance(s.home_networks, tuple):
        raise ConfigError("home_networks must be a list of MCC-MNC codes")
    if s.sasl_password is not None and not isinstance(s.sasl_password, Secret):
        raise ConfigError("sasl_password must be a Secret")
    for name in _PATHS:
        value = getattr(s, name)
        if value is not None and not isinstance(value, Path):
            raise ConfigError(f"{name} must be a path")


def _check_bootstrap(s: Settings) -> None:
    servers = [part.strip() for part in s.bootstrap_servers.split(",")]
    for server in servers:
        match = _HOST_PORT.match(server)
        if match is None or not 0 < int(match.group(1)) < 65536:
            raise ConfigError(
                "bootstrap_servers must be a comma-separated list of host:port, e.g. 127.0.0.1:9092"
            )


def _check_names(s: Settings) -> None:
    if not _TOPIC_CHARS.match(s.topic_prefix) or len(s.topic_prefix) > _MAX_PREFIX:
        raise ConfigError(
            f"topic_prefix may use only letters, digits, '.', '_' and '-' "
            f"(at most {_MAX_PREFIX} characters)"
        )
    if not _GROUP_ID.match(s.group_id):
        raise ConfigError("group_id must be 1-200 letters, digits, '.', '_' or '-'")


def _check_numbering(s: Settings) -> None:
    if not s.home_networks or not all(_MCC_MNC.match(n) for n in s.home_networks):
        raise ConfigError("home_networks must be a comma-separated list of 5-6 digit MCC-MNC codes")
    code = s.country_code
    if not (code.isascii() and code.isdigit() and 1 <= len(code) <= 3):
        raise ConfigError("country_code must be 1-3 digits, e.g. 46")
    if s.country_code.startswith("0"):
        raise ConfigError("country_code must not start with 0")
    if not (s.trunk_prefix == "" or (s.trunk_prefix.isascii() and s.trunk_prefix.isdigit())):
        raise ConfigError("trunk_prefix must be digits (or empty), e.g. 0")
    if len(s.trunk_prefix) > 2:
        raise ConfigError("trunk_prefix must be at most 2 digits")


def _check_security(s: Settings) -> None:
    if s.security_protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(f"security_protocol must be one of {', '.join(SECURITY_PROTOCOLS)}")
    sasl_given = [
        name
        for name in ("sasl_mechanism", "sasl_username", "sasl_password")
        if getattr(s, name) is not None
    ]
    if s.is_sasl:
        if s.sasl_mechanism not in SASL_MECHANISMS:
            raise ConfigError(
                f"security_protocol {s.security_protocol} needs sasl_mechanism, one of "
                f"{', '.join(SASL_MECHANISMS)}"
            )
        if not s.sasl_username or s.sasl_password is None or not s.sasl_password.reveal():
            raise ConfigError(
                f"security_protocol {s.security_protocol} needs sasl_username and "
                "sasl_password (CDRVEIL_SASL_USERNAME, CDRVEIL_SASL_PASSWORD)"
            )
    elif sasl_given:
        # Credentials set with a protocol that does not use them mean the operator
        # believes the connection is authenticated when it is not.
        raise ConfigError(
            f"{', '.join(sasl_given)} set but security_protocol is {s.security_protocol}; "
            "use SASL_SSL (or SASL_PLAINTEXT)"
        )
    ssl_given = [
        (name, path)
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile")
        if (path := getattr(s, name)) is not None
    ]
    if ssl_given and not s.is_ssl:
        raise ConfigError(
            f"{', '.join(n for n, _ in ssl_given)} set but security_protocol is "
            f"{s.security_protocol}; use SSL or SASL_SSL"
        )
    for name, path in ssl_given:
        if not path.is_file():
            raise ConfigError(f"{name} {path} does not exist or is not a file")
    if s.ssl_keyfile is not None and s.ssl_certfile is None:
        raise ConfigError("ssl_keyfile needs ssl_certfile (the client certificate)")


def _check_modes(s: Settings) -> None:
    if s.processing_guarantee not in PROCESSING_GUARANTEES:
        raise ConfigError(
            "processing_guarantee must be at_least_once or exactly_once "
            "(exactly_once needs Apache Kafka; the embedded broker has no transactions)"
        )
    if s.engine not in ENGINES:
        raise ConfigError("engine must be native or python (CDRVEIL_ENGINE)")
    if s.log_level not in LOG_LEVELS:
        raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
    if not s.web_host:
        raise ConfigError("web_host must not be empty (e.g. 127.0.0.1 or 0.0.0.0)")


def _check_paths(s: Settings) -> None:
    if s.policy_path is None or not s.policy_path.is_file():
        raise ConfigError(
            f"policy file {s.policy_path} does not exist; unset CDRVEIL_POLICY_PATH to use "
            "the packaged default policy"
        )


_CHECKS: Final[tuple[Callable[[Settings], None], ...]] = (
    _check_types,
    _check_bootstrap,
    _check_names,
    _int_in("partitions", 1, 10_000),
    _int_in("replication_factor", 1, 32),
    _check_numbering,
    # The decoder needs room for a minimal record; 1 MiB is Kafka's default message limit.
    _int_in("max_record_bytes", 256, 1_048_576),
    _check_security,
    _check_modes,
    _int_in("batch_max_records", 1, 100_000),
    _int_in("linger_ms", 0, 60_000),
    _int_in("fetch_max_wait_ms", 0, 10_000),
    _int_in("session_timeout_ms", 1_000, 300_000),
    _int_in("stop_timeout_ms", 100, 600_000),
    _int_in("web_port", 0, 65_535),
    _check_paths,
)

_FIELDS: Final = {f.name: f for f in fields(Settings)}
