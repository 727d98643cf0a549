"""Fields of a consent state or a warrant that the schemas do not define: counted, not ignored.

The portal or the warrant system may publish fields cdrveil does not read (a new one, or a
misspelt ``objection`` for ``objections``, which would otherwise silently mean *no
objection*). Each table counts, per field name, the messages that carried one; the worker
logs each name once and exports the counts. A name is data from outside and could hold an
identifier, so only a plain short name is kept as it is: anything else (another character,
more than :data:`MAX_NAME` characters, a run of 8 digits) counts under :data:`OTHER`, as
does every name beyond the first :data:`MAX_NAMES`. The compiled engine's tables
(``engine/src/tables.rs``) apply the same rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

#: The top-level fields ``consent-state.schema.json`` defines.
CONSENT_FIELDS: Final = ("msisdn", "purposes", "objections", "version", "updatedAt")
#: The top-level fields ``warrant.schema.json`` defines.
WARRANT_FIELDS: Final = ("liid", "targets", "validFrom", "validUntil", "authority")

MAX_NAME: Final = 64
MAX_NAMES: Final = 64
#: Where a name that cannot be shown (or one too many) is counted.
OTHER: Final = "(other)"
_PLAIN: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_DIGITS: Final = re.compile(r"[0-9]{8}")


def shown(name: str) -> bool:
    """Whether a field name may be counted and logged as it is."""
    return bool(_PLAIN.match(name)) and not _DIGITS.search(name)


def count_unknown(names: Iterable[str], known: tuple[str, ...], into: dict[str, int]) -> None:
    """Add one to ``into`` for each distinct name of one message that ``known`` lacks."""
    for name in dict.fromkeys(names):
        if name in known:
            continue
        slot = name if shown(name) and (name in into or len(into) < MAX_NAMES) else OTHER
        into[slot] = into.get(slot, 0) + 1
