"""Inputs for a test on Apache Kafka, and what the worker must make of them."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.settings import Settings
from pipeline.shell.topics import TopicNames
from pipeline.synth import Workload, consent_states, records, warrants
from soak.harness import Expectation, Input, create_all_topics, publish


@dataclass
class Loaded:
    """The inputs published, and the engine's expectation for them."""

    inputs: list[Input]
    expectation: Expectation


async def load(settings: Settings, count: int, subscribers: int = 500, seed: int = 7) -> Loaded:
    """Create every topic, publish consent, warrants and ``count`` records (some malformed)."""
    names = TopicNames(settings.topic_prefix)
    await create_all_topics(settings)
    workload = Workload(subscribers=subscribers, seed=seed, malformed_share=0.02)
    consent = list(consent_states(workload))
    warrant_messages = [(w.key, w.value) for w in warrants(workload, 2)]
    await publish(settings, [(names.consent, k, v) for k, v in consent])
    await publish(settings, [(names.warrants, k, v) for k, v in warrant_messages])
    topic_of = {"voice": names.inputs[0], "sms": names.inputs[1]}
    messages = []
    for m in records(workload, count):
        key = m.record_id.encode() if m.key is None and m.value is None else m.key
        messages.append((topic_of[m.kind], key, m.value))
    sent = await publish(settings, messages)
    expectation = Expectation(settings, consent, warrant_messages)
    for message in sent:
        expectation.add(message)
    return Loaded(sent, expectation)
