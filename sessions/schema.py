"""What the OpenAPI schema says beyond the views: our two bearer-token schemes and the error responses."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse

from sessions.serializers import ErrorSerializer


class SupabaseJWTScheme(OpenApiAuthenticationExtension):
    target_class = "sessions.authentication.SupabaseJWTAuthentication"
    name = "supabaseJWT"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


class MachineTokenScheme(OpenApiAuthenticationExtension):
    target_class = "sessions.authentication.MachineTokenAuthentication"
    name = "machineToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "The token a preview machine was started with."}


def errors(**described: str) -> dict[int, OpenApiResponse]:
    """Error responses for ``@extend_schema(responses=...)``, keyed ``e400=``, ``e404=``...: each the
    ``Error`` component with its codes in the description."""
    return {
        int(key.removeprefix("e")): OpenApiResponse(response=ErrorSerializer, description=text)
        for key, text in described.items()
    }


AUTH_CODES = "`auth.required`, `auth.expired`, `auth.malformed`, `auth.anonymous`, `auth.bad_audience`..."
RETRY_AFTER = {
    "schema": {"type": "integer"},
    "description": "seconds to wait (with `rate_limited`; quota refusals do not carry it)",
}
# What every operation can answer whatever its view says: a token refused, the rate limits, and for
# those that read a body, DRF's parsing and the body limit (``velocity.middleware``).
EVERYWHERE = {"429": "`rate_limited`: too many requests; `Retry-After` and `details.retry_after` say when to retry"}
UUID_404 = "`not_found`: an id in the path that is not a UUID matches no endpoint"
WITH_BODY = {
    "400": "`request.invalid` (`details.fields`), `request.malformed`: the body is not valid",
    "413": "`request.too_large`: the body is over `API_MAX_BODY_BYTES` (`details.limit_bytes`)",
    "415": "`request.unsupported_media_type`: the body is not JSON",
}


def add_common_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the errors no view raises itself, on every operation."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            common = dict(EVERYWHERE)
            if operation.get("security") and {} not in operation["security"]:
                schemes = {name for requirement in operation["security"] for name in requirement}
                common["401"] = "`auth.machine_token`" if schemes == {"machineToken"} else AUTH_CODES
            if "requestBody" in operation:
                common.update(WITH_BODY)
            if any(p["in"] == "path" and p["schema"].get("format") == "uuid" for p in operation.get("parameters", [])):
                common["404"] = UUID_404
            for status_code, text in common.items():
                responses.setdefault(status_code, {"description": text, "content": error})
            if "429" in responses:
                responses["429"].setdefault("headers", {})["Retry-After"] = RETRY_AFTER
    return result
