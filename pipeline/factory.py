"""Build the engine from settings: the one place the policy and keyring are loaded for a worker."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from pipeline.core.batch import BatchEngine, PythonBatchEngine, RecordEngine
from pipeline.core.engine import Engine
from pipeline.core.keys import Keyring, Pseudonymizer
from pipeline.core.policy import Policy
from pipeline.errors import ConfigError
from pipeline.settings import Settings

log = logging.getLogger("cdrveil.engine")

#: The module of the compiled engine (the Rust extension's wrapper).
NATIVE_MODULE = "pipeline.core.native"


def native_engine_class() -> Any:
    """``NativeBatchEngine``, or a :class:`ConfigError` if this installation lacks it.

    Never a silent fallback to the Python engine: a worker that runs several times slower
    than it was sized for must be a decision someone took (``CDRVEIL_ENGINE=python``).
    """
    try:
        return importlib.import_module(NATIVE_MODULE).NativeBatchEngine
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            "CDRVEIL_ENGINE is native, but the native engine is not built into this "
            f"installation ({NATIVE_MODULE}: {type(exc).__name__}: {exc}); install cdrveil "
            "with its compiled engine (`make venv`, or a wheel built with maturin), or set "
            "CDRVEIL_ENGINE=python to run the Python reference engine"
        ) from None


def build_engine(settings: Settings, policy: Policy | None = None) -> BatchEngine:
    """The engine ``settings.engine`` names, with empty tables, for ``policy`` (by default the
    one the settings name); refuses (ConfigError) an unsafe keyring, a bad policy, or
    ``native`` where the native engine is not installed."""
    policy, keyring = _load(settings, policy)
    kind = native_engine_class() if settings.engine == "native" else PythonBatchEngine
    engine: BatchEngine = kind.build(policy, Pseudonymizer(keyring), **_numbering(settings))
    return engine


def build_reference(settings: Settings, policy: Policy | None = None) -> Engine:
    """The Python reference engine, one record at a time (the oracle of the soak runs and
    baselines, whatever ``settings.engine`` says)."""
    policy, keyring = _load(settings, policy)
    return Engine.build(policy, Pseudonymizer(keyring), **_numbering(settings))


def _load(settings: Settings, policy: Policy | None) -> tuple[Policy, Keyring]:
    if policy is None:
        policy = Policy.load(settings.policy_path)
    keyring = Keyring.load(settings.require_keyring())
    # Ids and versions only: never key material.
    log.info(
        "policy %s (%s), active key %s, routes: %s",
        policy.version,
        policy.source,
        keyring.active,
        ", ".join(policy.routes),
    )
    return policy, keyring


def _numbering(settings: Settings) -> dict[str, Any]:
    """The keywords both engines' ``build`` take from the settings."""
    return {
        "country_code": settings.country_code,
        "trunk_prefix": settings.trunk_prefix,
        "max_record_bytes": settings.max_record_bytes,
        "home_networks": frozenset(settings.home_networks),
        "topic_prefix": settings.topic_prefix,
    }


def wrap_record_engine(settings: Settings, engine: RecordEngine) -> PythonBatchEngine:
    """A one-record-at-a-time stand-in engine (tests, baselines) behind the batch interface,
    with tables that normalize numbers as ``settings`` say."""
    return PythonBatchEngine.around(
        engine, country_code=settings.country_code, trunk_prefix=settings.trunk_prefix
    )
