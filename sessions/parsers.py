"""The API's JSON parser: DRF's, refusing what would fail after parsing (see ``velocity.json_input``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json as drf_json

from velocity import json_input


class StrictJSONParser(JSONParser):
    """Every unreadable body is a 400 ``request.malformed``, never a ``RecursionError`` 500."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        parse_constant = drf_json.strict_constant if self.strict else None
        try:
            return json_input.loads(stream.read().decode(encoding), parse_constant=parse_constant)
        except ValueError as exc:  # UnicodeDecodeError and MalformedJSON are ValueErrors
            raise ParseError(f"JSON parse error - {exc}", code="request.malformed") from None
