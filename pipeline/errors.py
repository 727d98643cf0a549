"""The one error hierarchy of cdrveil.

Expected bad *data* is never an exception: the decoder returns a
:class:`pipeline.core.decode.Rejection` value that the shell routes to the
dead-letter topic. Exceptions are for configuration mistakes, bugs and
infrastructure failures::

    CdrveilError
    ├── ConfigError          settings, policy or keyring unusable; refuse to start
    │   ├── PolicyError      the policy file is invalid
    │   └── KeyringError     the keyring is missing, unsafe or inconsistent
    └── BrokerError          Kafka could not be reached or refused an operation

Messages say what is wrong and how to fix it; they never carry an identifier
or key material.
"""

from __future__ import annotations


class CdrveilError(Exception):
    """Root of every error cdrveil raises on purpose."""

    #: Process exit status the CLI uses for this error.
    exit_code: int = 1


class ConfigError(CdrveilError):
    """A setting, the policy or the keyring makes it unsafe to start."""

    exit_code = 2


class PolicyError(ConfigError):
    """The policy file cannot be read or breaks a rule of the policy format."""


class KeyringError(ConfigError):
    """The keyring is missing, readable by others, too weak or inconsistent."""


class BrokerError(CdrveilError):
    """Kafka could not be reached, or refused an operation."""

    exit_code = 3
    #: Whether retrying later may succeed.
    retriable: bool = True
