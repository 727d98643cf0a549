"""The dead-letter headers: their names, and the two ways a dead letter is made.

A dead letter keeps the input's key and bytes untouched; everything about it is in headers
(``schemas/dead-letter.schema.json``). The worker writes the source topic, partition and
offset of the record it rejected (:func:`dead_letter_headers`); ``cdrveil ingest`` writes the
file and the byte offset where the dead letter's octets start in it, a CDR's header or a
damaged stretch (:func:`file_dead_letter_headers`; the rule is ``pipeline.ber.reader``'s).
``cdrveil replay``, the demo and the soak runs read them back by these names.

Pure code (no Kafka client): the ingest and replay tools import it as well as the worker.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import pipeline
from pipeline.core.decode import Rejection

#: The reason code (``schemas/common.schema.json`` lists them).
ERROR_CODE: Final = "dlq.error.code"
#: What is wrong, naming the field and never its value.
ERROR_MESSAGE: Final = "dlq.error.message"
#: The worker's input: topic, partition and offset of the rejected record.
SOURCE_TOPIC: Final = "dlq.source.topic"
SOURCE_PARTITION: Final = "dlq.source.partition"
SOURCE_OFFSET: Final = "dlq.source.offset"
#: Ingest's input: the file's base name (with ``SOURCE_OFFSET``, the byte offset in it).
SOURCE_FILE: Final = "dlq.source.file"
#: When the dead letter was written, RFC 3339 UTC with milliseconds (differs on a replay).
TIMESTAMP: Final = "dlq.timestamp"
#: The cdrveil version that wrote it.
VERSION: Final = "cdrveil.version"

Headers = list[tuple[str, bytes]]

_VERSION: Final = pipeline.__version__.encode()


def rfc3339(moment: datetime) -> str:
    """A UTC time as RFC 3339 with milliseconds and "Z", as ``dlq.timestamp`` carries it."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dead_letter_headers(
    rejection: Rejection, topic: str, partition: int, offset: int, now: datetime
) -> Headers:
    """The headers of a worker's dead letter: why, where it came from, when, which version."""
    return [
        (ERROR_CODE, rejection.code.encode()),
        (ERROR_MESSAGE, rejection.message.encode()),
        (SOURCE_TOPIC, topic.encode()),
        (SOURCE_PARTITION, str(partition).encode()),
        (SOURCE_OFFSET, str(offset).encode()),
        (TIMESTAMP, rfc3339(now).encode()),
        (VERSION, _VERSION),
    ]


def file_dead_letter_headers(
    code: str, message: str, file_name: str, offset: int, now: datetime
) -> Headers:
    """The headers of an ingest dead letter: the file and byte offset take the place of the
    source topic, partition and offset (the file's base name, as in record ids)."""
    return [
        (ERROR_CODE, code.encode()),
        (ERROR_MESSAGE, message.encode()),
        (SOURCE_FILE, file_name.encode("utf-8", "surrogateescape")),
        (SOURCE_OFFSET, str(offset).encode()),
        (TIMESTAMP, rfc3339(now).encode()),
        (VERSION, _VERSION),
    ]
