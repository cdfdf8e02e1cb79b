"""Sensitive personal data in transit (5.8-2-2): which mechanisms carry it, and how it shows on the wire.

The IXIT says both: 21-PersData entries with `sensitive: true` name their 11-ComMech channels
and how the data appears in the device's messages (`appears_as`); an 11-ComMech entry may also
say `carries.sensitive_personal_data: true` by itself. Nothing here is guessed from a product's
strings: a sensitive entry without `appears_as` cannot be looked for, and the test says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.errors import CertlabError


@dataclass(frozen=True)
class SensitiveScope:
    """The mechanisms in scope of 5.8-2-2 and the clear-text markers of the sensitive data."""

    entries: tuple[str, ...]  # 21-PersData ids with sensitive: true
    mechanisms: tuple[str, ...]  # 11-ComMech ids carrying sensitive personal data
    markers: tuple[tuple[str, re.Pattern[bytes]], ...]


def sensitive_scope(ixit) -> SensitiveScope:
    """The scope from the IXIT; CertlabError (one line: field and fix) when it cannot be built."""
    known = {m.id for m in ixit.com_mech}
    entries = [p for p in ixit.pers_data if p.sensitive]
    mechanisms: list[str] = []
    markers: list[tuple[str, re.Pattern[bytes]]] = []
    for entry in entries:
        unknown = [m for m in entry.communication_mechanisms if m not in known]
        if unknown:
            raise CertlabError(f"ixit: 21-PersData entry {entry.id!r}: communication_mechanisms names {unknown[0]!r}, "
                               "which is no 11-ComMech id (fix the id, or add the mechanism to 11-ComMech)")
        if not entry.appears_as:
            raise CertlabError(f"ixit: 21-PersData entry {entry.id!r} is sensitive but field appears_as is not set; the "
                               "lab needs it to find the data in clear text in a capture (add the field names or fixed "
                               "words by which it shows in the device's messages, e.g. appears_as: [occupancy])")
        mechanisms += entry.communication_mechanisms
        markers += [(f"sensitive personal data {entry.id!r} (21-PersData appears_as {word!r})",
                     re.compile(re.escape(word.encode()), re.IGNORECASE)) for word in entry.appears_as]
    mechanisms += [m.id for m in ixit.com_mech if m.carries.sensitive_personal_data]
    return SensitiveScope(tuple(p.id for p in entries), tuple(dict.fromkeys(mechanisms)), tuple(markers))

