"""The batch interface the worker calls: one call per consumed batch, for either engine.

``process_batch`` takes the values of one consumed batch (in the order the worker took
them) and returns every output, in input order, with each input's outputs in the engine's
order, and the inputs it rejected, by their index in the batch. The consent and warrant
tables belong to the engine: the worker's table consumers feed ``engine.consent`` and
``engine.warrants`` one message at a time, and lookups never leave the engine.

:class:`PythonBatchEngine` is the reference (the readable engine of
:mod:`pipeline.core.engine`, which ``explain`` runs); ``pipeline.core.native`` holds the
compiled one, proven byte-identical to it. The shell never knows which one it drives.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final, NamedTuple, Protocol, runtime_checkable

from pipeline.core.consent import ConsentLookup, ConsentTable
from pipeline.core.decode import Rejection
from pipeline.core.engine import Engine, Output
from pipeline.core.keys import Pseudonymizer
from pipeline.core.normalize import MsisdnNormalizer
from pipeline.core.policy import Policy
from pipeline.core.warrants import WarrantIndex

#: The reason code of a record the engine raised on (a bug): dead-lettered, never lost.
INTERNAL_ERROR: Final = "internal_error"

#: No party numbers counted (an engine that does not count them).
NO_COUNTS: Final[Mapping[str, int]] = MappingProxyType({})


class BatchResult(NamedTuple):
    """What one batch gave: the outputs, and which inputs were rejected and why."""

    #: (topic, key, value, headers), in input order, each input's outputs in engine order.
    outputs: list[Output]
    #: (index of the input in the batch, rejection), in input order.
    rejections: list[tuple[int, Rejection]]
    #: Party-number values of the accepted records by class (``party.PartyClass`` value):
    #: how many service codes, short numbers... the batch held (the shell's metric).
    parties: Mapping[str, int] = NO_COUNTS


class StateTable(Protocol):
    """A table the worker's consumers feed from a compacted topic (consent or warrants)."""

    #: Count of messages not accepted, by problem code.
    rejected: dict[str, int]

    def apply(self, key: bytes | None, value: bytes | None) -> object:
        """Apply one message of the topic (``None`` value = tombstone)."""

    def __len__(self) -> int:
        """How many entries the table holds."""


class BatchEngine(Protocol):
    """An engine as the worker drives it: its tables, and one call per consumed batch."""

    # Read-only properties, so any attribute of a matching type satisfies them.
    @property
    def name(self) -> str:
        """``"python"`` or ``"native"``: what the worker says it runs."""

    @property
    def consent(self) -> StateTable:
        """The consent table the ``consent.state`` consumer feeds."""

    @property
    def warrants(self) -> StateTable:
        """The warrant index the ``li.warrants`` consumer feeds."""

    def process_batch(self, values: Sequence[bytes | None]) -> BatchResult:
        """The outputs and rejections of one batch of input values."""


class Layout(NamedTuple):
    """How outputs are laid out in Kafka record batches, for an engine that builds them."""

    #: Partition count of every topic the engine can write (``output_topics``).
    partitions: dict[str, int]
    #: A record batch closes when the next record would take it past this size (the
    #: producer's ``max_batch_size``); an empty batch takes any one record.
    batch_bytes: int
    #: The CreateTime (Unix ms) of every record of this call.
    timestamp_ms: int
    #: The keyless counter before this call: a keyless message goes to ``counter % n``.
    round_robin: int


class PartitionBatches(NamedTuple):
    """One partition's finished record batches (Kafka v2), in the order to send them."""

    topic: str
    partition: int
    batches: list[bytes]


class RecordBatches(NamedTuple):
    """What one batch gave, as finished record batches instead of output objects."""

    partitions: list[PartitionBatches]
    rejections: list[tuple[int, Rejection]]
    #: The keyless counter after this call (the dead letters continue from it).
    round_robin: int
    #: Party-number values of the accepted records by class, as ``BatchResult.parties``.
    parties: Mapping[str, int] = NO_COUNTS


@runtime_checkable
class RecordBatchEngine(BatchEngine, Protocol):
    """A batch engine that also builds the Kafka record batches of its outputs.

    ``process_batch_records(values, layout)`` must give exactly the record batches that
    :func:`pipeline.shell.produce.reference_record_batches` builds from
    ``process_batch(values).outputs`` with the same layout: keyed messages partitioned by
    murmur2 (Kafka's default partitioner), keyless ones round-robin from
    ``layout.round_robin``, each partition's records in output order.
    """

    @property
    def output_topics(self) -> Sequence[str]:
        """Every topic the engine can write (its routes' topics, prefix included)."""

    def process_batch_records(
        self, values: Sequence[bytes | None], layout: Layout
    ) -> RecordBatches:
        """The record batches and rejections of one batch of input values."""


class RecordEngine(Protocol):
    """An engine that decides one record at a time (:class:`~pipeline.core.engine.Engine`,
    or a stand-in in the tests and baselines)."""

    def process(
        self, raw: bytes | None, consent: ConsentLookup, warrants: WarrantIndex
    ) -> Rejection | list[Output]:
        """Outputs of one input message, or why it was rejected."""


def internal_error(exc: BaseException) -> Rejection:
    """The rejection for an engine that raised: a bug, still dead-lettered.

    The message names the exception type and where it was raised, never its text, which
    could quote a field value.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    return Rejection(INTERNAL_ERROR, f"the engine raised {type(exc).__name__}{where}")


class PythonBatchEngine:
    """The reference engine behind the batch interface, with the Python tables.

    Records are decided one by one by the wrapped engine; one that raises becomes an
    :data:`INTERNAL_ERROR` rejection (a bug must cost one dead letter, never the batch).
    """

    name = "python"

    __slots__ = ("_lookup", "consent", "engine", "warrants")

    def __init__(self, engine: RecordEngine, consent: ConsentTable, warrants: WarrantIndex) -> None:
        self.engine = engine
        self.consent = consent
        self.warrants = warrants
        self._lookup = consent.get

    @classmethod
    def build(
        cls,
        policy: Policy,
        pseudonymizer: Pseudonymizer,
        *,
        country_code: str = "46",
        trunk_prefix: str = "0",
        max_record_bytes: int = 65536,
        home_networks: frozenset[str] = frozenset({"24001"}),
        topic_prefix: str = "",
    ) -> PythonBatchEngine:
        """The reference engine and empty tables (the keywords of ``Engine.build``)."""
        engine = Engine.build(
            policy,
            pseudonymizer,
            country_code=country_code,
            trunk_prefix=trunk_prefix,
            max_record_bytes=max_record_bytes,
            home_networks=home_networks,
            topic_prefix=topic_prefix,
        )
        return cls.around(engine, country_code=country_code, trunk_prefix=trunk_prefix)

    @classmethod
    def around(
        cls, engine: RecordEngine, *, country_code: str = "46", trunk_prefix: str = "0"
    ) -> PythonBatchEngine:
        """``engine`` with empty tables that normalize numbers like the settings say."""
        msisdn = MsisdnNormalizer(country_code, trunk_prefix)
        return cls(engine, ConsentTable(msisdn), WarrantIndex(msisdn))

    @property
    def policy(self) -> Policy | None:
        """The wrapped engine's policy, if it has one (for the metrics' route labels)."""
        policy = getattr(self.engine, "policy", None)
        return policy if isinstance(policy, Policy) else None

    @property
    def withheld(self) -> dict[tuple[str, str], int]:
        """Outputs not published, by (route name, reason), if the wrapped engine counts them."""
        counts = getattr(self.engine, "withheld", None)
        return dict(counts) if isinstance(counts, dict) else {}

    @property
    def key_id(self) -> str | None:
        """The id of the active key, if the wrapped engine has one (never key material)."""
        key_id = getattr(self.engine, "key_id", None)
        return key_id if isinstance(key_id, str) else None

    def process_batch(self, values: Sequence[bytes | None]) -> BatchResult:
        """Decide every value in order; an engine that raises rejects that record only."""
        outputs: list[Output] = []
        rejections: list[tuple[int, Rejection]] = []
        process, consent, warrants = self.engine.process, self._lookup, self.warrants
        for index, raw in enumerate(values):
            try:
                result = process(raw, consent, warrants)
            except Exception as exc:  # noqa: BLE001 - an engine bug must not stop the pipeline
                rejections.append((index, internal_error(exc)))
                continue
            if isinstance(result, Rejection):
                rejections.append((index, result))
            else:
                outputs += result
        take = getattr(self.engine, "take_party_numbers", None)
        return BatchResult(outputs, rejections, take() if take is not None else NO_COUNTS)
