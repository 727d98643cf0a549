"""The defaults of the settings that the pure packages also need: one home for each.

:class:`pipeline.settings.Settings` takes its defaults from here, and so do the keyword
defaults of the core, the BER decoder and the generator, so a changed default changes
everywhere at once. A leaf module: it imports nothing, and every package may import it.
"""

from __future__ import annotations

from typing import Final

#: The home country code that national numbers get (E.164, without "+").
COUNTRY_CODE: Final = "46"
#: The national trunk prefix (``0701234567`` is the national form of ``46701234567``).
TRUNK_PREFIX: Final = "0"
#: MCC-MNC codes of the home network(s); a record served elsewhere is roaming.
HOME_NETWORKS: Final[tuple[str, ...]] = ("24001",)
#: Larger input messages are dead letters (``oversize``).
MAX_RECORD_BYTES: Final = 65_536
