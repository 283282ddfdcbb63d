"""Fly's official OpenAPI spec as a contract: validate wire requests and answers with openapi-core.

The spec is OpenAPI 3.1.0, which openapi-core reads as it is. The request and response adapters carry
what really crossed the socket.

Where the spec comes from: no registry package (PyPI, npm) ships Fly's Machines OpenAPI spec, and no
third-party file is copied into this repository, so it is read from the project's shared folder beside (or
above) the checkout, ``shared/ref/fly-machines-openapi.json``, where CI's clone has it too, or from the
path in ``FLY_OPENAPI_SPEC``. Under CI a missing spec fails the contract tests (``velocity.testing.require``).
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPEC_RELATIVE = Path("shared/ref/fly-machines-openapi.json")
SPEC_SERVER = "https://api.machines.dev"


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class WireRequest:
    """What the server received, in the shape openapi-core's ``Request`` protocol wants."""

    def __init__(self, method: str, path: str, query: list[tuple[str, str]], headers: Headers, raw: bytes) -> None:
        self.host_url = SPEC_SERVER  # the spec's server: we validate the call, not the host
        self.path = path
        self.method = method.lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(query), header=headers, cookie=ImmutableMultiDict()
        )
        self.body = raw or None
        self.content_type = headers.get("Content-Type", "application/octet-stream").lower()


class WireResponse:
    def __init__(self, answer: Answer) -> None:
        self.status_code = answer.status
        self.data = b"" if answer.body is None else json.dumps(answer.body).encode()
        self.content_type = "application/json" if answer.body is not None else ""
        self.headers = Headers(answer.headers)


def find_spec() -> Path | None:
    """Fly's spec as kept in the project's shared/ folder, beside or above this checkout.

    ``FLY_OPENAPI_SPEC`` names another copy.
    """
    if override := os.environ.get("FLY_OPENAPI_SPEC"):
        return Path(override) if Path(override).is_file() else None
    for folder in Path(__file__).resolve().parents:
        if (folder / SPEC_RELATIVE).is_file():
            return folder / SPEC_RELATIVE
    return None


SPEC_MISSING = (
    "Fly's OpenAPI spec is neither at shared/ref/fly-machines-openapi.json beside or above this checkout "
    "nor at FLY_OPENAPI_SPEC"
)


def spec_waived() -> bool:
    """The runner says it has no copy of the spec (``.ci/run`` when none is beside the clone): the contract
    tests skip, loudly, instead of failing CI for a file no registry ships."""
    return bool(os.environ.get("CI_WITHOUT_FLY_SPEC"))


@functools.cache
def shared_contract() -> SpecContract | None:
    """The contract, loaded once per test run (parsing the spec takes about a second)."""
    spec_path = find_spec()
    return None if spec_path is None else SpecContract(spec_path)


class SpecContract:
    """Validates calls against Fly's OpenAPI 3.1 spec with openapi-core."""

    def __init__(self, spec_path: Path) -> None:
        self.spec = json.loads(spec_path.read_text())
        self.openapi = OpenAPI.from_dict(self.spec)

    def request_errors(self, request: WireRequest) -> list[str]:
        errors = [_describe(error) for error in self.openapi.unmarshal_request(request).errors]
        return errors + self._undeclared_query(request)

    def response_errors(self, request: WireRequest, answer: Answer) -> list[str]:
        declared = self._operation(request).get("responses", {}).get(str(answer.status))
        if declared is None:
            return []  # a status the spec does not document; nothing to validate against
        if not declared.get("content"):
            # The spec's "content": {} (a Swagger 2.0 conversion artifact) means no body is
            # documented; openapi-core would demand a body of no media type, which nothing meets.
            return [] if answer.body is None else ["a body where the spec documents none"]
        result = self.openapi.unmarshal_response(request, WireResponse(answer))
        return [_describe(error) for error in result.errors]

    def operation_id(self, request: WireRequest) -> str:
        return str(self._operation(request).get("operationId"))

    def _operation(self, request: WireRequest) -> dict[str, Any]:
        for template, item in self.spec["paths"].items():
            if re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", template), request.path) and request.method in item:
                return dict(item[request.method])
        return {}

    def _undeclared_query(self, request: WireRequest) -> list[str]:
        # openapi-core ignores query names the operation does not declare; the spec declares
        # the metadata filter as the template "metadata.{key}", so match templates here.
        declared = [p["name"] for p in self._operation(request).get("parameters", []) if p["in"] == "query"]
        patterns = [re.compile(re.sub(r"\\\{[^}]+\\\}", ".+", re.escape(name))) for name in declared]
        names = request.parameters.query.keys()
        return [f"undeclared query parameter {n!r}" for n in names if not any(p.fullmatch(n) for p in patterns)]


def _describe(error: Exception) -> str:
    return f"{error} ({error.__cause__!r})" if error.__cause__ else str(error)
