"""How the OpenAPI schema describes our two authentication classes (both are bearer tokens)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


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
