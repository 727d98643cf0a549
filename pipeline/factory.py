"""Build the engine from settings: the one place the policy and keyring are loaded for a worker."""

from __future__ import annotations

import logging

from pipeline.core.engine import Engine
from pipeline.core.keys import Keyring, Pseudonymizer
from pipeline.core.policy import Policy
from pipeline.settings import Settings

log = logging.getLogger("cdrveil.engine")


def build_engine(settings: Settings, policy: Policy | None = None) -> Engine:
    """The engine for these settings and ``policy`` (by default the one the settings name);
    refuses (ConfigError) an unsafe keyring or bad policy."""
    if policy is None:
        policy = Policy.load(settings.policy_path)
    keyring = Keyring.load(settings.require_keyring())
    engine = Engine.build(
        policy,
        Pseudonymizer(keyring),
        country_code=settings.country_code,
        trunk_prefix=settings.trunk_prefix,
        max_record_bytes=settings.max_record_bytes,
        home_networks=frozenset(settings.home_networks),
        topic_prefix=settings.topic_prefix,
    )
    # Ids and versions only: never key material.
    log.info(
        "policy %s (%s), active key %s, routes: %s",
        policy.version,
        policy.source,
        keyring.active,
        ", ".join(policy.routes),
    )
    return engine
