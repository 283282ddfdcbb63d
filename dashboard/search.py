"""Reading what an operator typed into a search box: an id (whole, or a prefix of 6+ hex digits, with or
without dashes), a provider's machine id, or a piece of a project name. Pure: no database.

Tables show ids by their first 8 characters, and users quote those; a prefix is matched against the id's
canonical text (``1a2b3c4d-5e6f-...``, lower case), which both PostgreSQL (an uuid cast to text) and
SQLite (Django drops the dashes of a UUIDField lookup there) compare correctly.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

MIN_PREFIX = 6
HEX_DIGITS = 32
_DASHES_AFTER = (8, 12, 16, 20)  # hex digits before each dash of the canonical form
_HEXISH = re.compile(r"[0-9a-f-]+")
_UUID_SHAPED = re.compile(r"[0-9a-z]{8}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{12}|[0-9a-z]{32}")


@dataclass(frozen=True)
class SearchTerms:
    """What to look for. ``id_prefix`` is canonical (dashed, lower case); ``problem`` says, in a sentence,
    why the text could not be read as an id although it looks like one ("" when it could, or is plain text)."""

    text: str
    id_prefix: str = ""
    problem: str = ""

    @property
    def exact_id(self) -> uuid.UUID | None:
        return uuid.UUID(self.id_prefix) if len(self.id_prefix) == len(str(uuid.UUID(int=0))) else None


def search_parse(query: str) -> SearchTerms:
    text = query.strip()
    lowered = text.lower()
    if not text:
        return SearchTerms(text)
    if _HEXISH.fullmatch(lowered):
        return _hex_terms(text, lowered)
    if _UUID_SHAPED.fullmatch(lowered):
        wrong = sorted({char for char in lowered if char not in "0123456789abcdef-"})
        return SearchTerms(
            text, problem=f"'{text}' is not a valid id: {', '.join(wrong)} is not a hex digit (0-9, a-f)"
        )
    return SearchTerms(text)


def _hex_terms(text: str, lowered: str) -> SearchTerms:
    digits = lowered.replace("-", "")
    if len(digits) > HEX_DIGITS:
        return SearchTerms(
            text, problem=f"'{text}' is not a valid id: an id has {HEX_DIGITS} hex digits, not {len(digits)}"
        )
    if "-" in lowered and lowered != canonical_prefix(digits)[: len(lowered)]:
        return SearchTerms(text, problem=f"'{text}' is not a valid id: its dashes are out of place (8-4-4-4-12)")
    if len(digits) < MIN_PREFIX:
        if any(char.isdigit() for char in digits):
            return SearchTerms(text, problem=f"'{text}' is too short: type at least {MIN_PREFIX} characters of an id")
        return SearchTerms(text)  # a short word such as "cafe" is a project name, not an id
    return SearchTerms(text, id_prefix=canonical_prefix(digits))


def canonical_prefix(digits: str) -> str:
    """``1a2b3c4d5e`` → ``1a2b3c4d-5e``: hex digits laid out as the start of a canonical UUID."""
    pieces, start = [], 0
    for end in (*_DASHES_AFTER, HEX_DIGITS):
        if start >= len(digits):
            break
        pieces.append(digits[start:end])
        start = end
    return "-".join(pieces)
